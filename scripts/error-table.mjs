// README's table of error codes, made from ERROR_CATALOG (src/errors.ts) so the two cannot drift apart:
// `npm run build && node scripts/error-table.mjs` rewrites the table between the markers in README.md, and
// test/readme-errors.test.ts fails when README's table is not what this renders from the catalog.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const START = '<!-- error-table: generated from ERROR_CATALOG by scripts/error-table.mjs -->';
export const END = '<!-- /error-table -->';

/** The markdown table of every code, in catalog order: code, exit status, meaning. */
export function errorTable(catalog) {
  const rows = Object.entries(catalog).map(([code, { exit, meaning }]) => `| \`${code}\` | ${exit} | ${meaning.replace(/\|/g, '\\|')} |`);
  return ['| Code | Exit | Meaning |', '| --- | --- | --- |', ...rows].join('\n');
}

/** The table as README.md has it between the markers, or null when the markers are missing. */
export function readmeTable(text) {
  const start = text.indexOf(START);
  const end = text.indexOf(END);
  if (start < 0 || end < start) return null;
  return text.slice(start + START.length, end).trim();
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { ERROR_CATALOG } = await import('../dist/errors.js');
  const readme = fileURLToPath(new URL('../README.md', import.meta.url));
  const text = readFileSync(readme, 'utf8');
  if (readmeTable(text) === null) throw new Error(`README.md has no ${START} … ${END} markers`);
  const start = text.indexOf(START) + START.length;
  writeFileSync(readme, `${text.slice(0, start)}\n${errorTable(ERROR_CATALOG)}\n${text.slice(text.indexOf(END))}`);
}
