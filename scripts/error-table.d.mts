export const START: string;
export const END: string;
export function errorTable(catalog: Readonly<Record<string, { exit: 1 | 2; meaning: string }>>): string;
export function readmeTable(text: string): string | null;
