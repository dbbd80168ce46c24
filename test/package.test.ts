// The package as an embedding service imports it: file-only use never loads librbd.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const entry = fileURLToPath(new URL('../dist/index.js', import.meta.url));

describe('package entry', () => {
  it('stores and reads a file image without loading librbd or librados', async () => {
    const script = `
      import { mkdtempSync, readFileSync } from 'node:fs';
      import { tmpdir } from 'node:os';
      import { join } from 'node:path';
      const m = await import(${JSON.stringify(entry)});
      const store = new m.FileStore({ dataDir: mkdtempSync(join(tmpdir(), 'snapstore-pkg-')) });
      const r = await store.add('img', [Buffer.from('hello')], 5);
      const chunks = [];
      for await (const c of await store.get(r.location)) chunks.push(c);
      await store.delete(r.location);
      const maps = readFileSync('/proc/self/maps', 'utf8');
      console.log(JSON.stringify({ data: Buffer.concat(chunks).toString(), librbd: maps.includes('librbd'), librados: maps.includes('librados'), exports: Object.keys(m).sort() }));
    `;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script]);
    const out = JSON.parse(stdout) as { data: string; librbd: boolean; librados: boolean; exports: string[] };
    expect(out).toMatchObject({ data: 'hello', librbd: false, librados: false });
    // Exactly what src/index.ts exports (the global setup made sure dist/ is built from this src/).
    expect(out.exports).toEqual(Object.keys(await import('../src/index.js')).sort());
  });

  it('loads librbd once an RbdStore connects', async () => {
    const script = `
      import { readFileSync } from 'node:fs';
      const m = await import(${JSON.stringify(entry)});
      const before = readFileSync('/proc/self/maps', 'utf8').includes('librbd');
      const cluster = await m.CephCluster.connect({ confPath: process.env.CONF, user: 'glance', timeoutMs: 10000 });
      const after = readFileSync('/proc/self/maps', 'utf8').includes('librbd');
      await cluster.close();
      console.log(JSON.stringify({ before, after, fsid: cluster.fsid }));
    `;
    const { testbed } = await import('./support/testbed.js');
    const a = testbed().clusters.a;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, CONF: a.conf } });
    expect(JSON.parse(stdout)).toEqual({ before: false, after: true, fsid: a.fsid });
  });
});
