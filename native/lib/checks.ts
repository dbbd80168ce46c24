// Argument checks made in JS before a call reaches C (they reject with InvalidArgumentError naming the C
// call and the object), and the "pool/namespace/image@snap" spec errors name objects by.
import { invalid } from './errors.js';

export function checkName(value: unknown, what: string, call: string, object: string | undefined): asserts value is string {
  if (typeof value !== 'string' || value.length === 0) throw invalid(call, object, `${what} must be a non-empty string`);
  // C strings end at NUL: "a\0b" would reach librados/librbd as "a", another object's name.
  if (value.includes('\0')) throw invalid(call, object, `${what} must not contain a NUL character`);
}

export function checkUint(value: unknown, what: string, call: string, object: string | undefined): asserts value is number | bigint {
  if (typeof value === 'bigint' ? value >= 0n : typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return;
  throw invalid(call, object, `${what} must be a non-negative integer`);
}

/** "pool[/namespace][/image][@snap]" */
export function spec(pool: string, namespace?: string, image?: string, snap?: string): string {
  let s = pool;
  if (namespace) s += `/${namespace}`;
  if (image) s += `/${image}`;
  if (snap) s += `@${snap}`;
  return s;
}
