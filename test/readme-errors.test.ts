// README's error table is ERROR_CATALOG: every code, its exit status and meaning, in catalog order. When this
// fails, run `npm run build && node scripts/error-table.mjs` and commit README.md.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { errorTable, readmeTable } from '../scripts/error-table.mjs';
import { ERROR_CATALOG } from '../src/errors.js';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

describe('README error table', () => {
  it('is the table the catalog renders', () => {
    expect(readmeTable(readme)).toBe(errorTable(ERROR_CATALOG));
  });

  it('has one row per catalog code with its exit status', () => {
    const rows = (readmeTable(readme) ?? '').split('\n').slice(2);
    expect(rows.map((r) => /^\| `([A-Z_]+)` \| ([12]) \|/.exec(r)?.slice(1))).toEqual(
      Object.entries(ERROR_CATALOG).map(([code, { exit }]) => [code, String(exit)]),
    );
  });
});
