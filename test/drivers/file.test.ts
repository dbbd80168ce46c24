// FileStore specifics beyond the conformance suite: holes on disk, atomic publication, no escape from the
// data directory, the on-disk pending mark and what discard removes.
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, describe, expect, it } from 'vitest';
import { FileStore } from '../../src/drivers/file/index.js';
import { readAll, reference } from '../conformance/suite.js';

const MiB = 1024 * 1024;
const root = mkdtempSync(join(tmpdir(), 'snapstore-file-'));
afterAll(() => rm(root, { recursive: true, force: true }));

/** A 1 GiB stream: zeros except `dataChunks` 8 MiB chunks of random data at scattered positions. */
function scatteredGiB(dataChunks: number[]): { source: AsyncGenerator<Buffer>; digest: () => { checksum: string; multihash: string } } {
  const md5 = createHash('md5');
  const sha = createHash('sha512');
  const zero = Buffer.alloc(8 * MiB);
  async function* source() {
    for (let i = 0; i < 128; i++) {
      const piece = dataChunks.includes(i) ? randomBytes(8 * MiB) : zero;
      md5.update(piece);
      sha.update(piece);
      yield piece;
    }
  }
  return { source: source(), digest: () => ({ checksum: md5.digest('hex'), multihash: sha.digest('hex') }) };
}

describe('FileStore', () => {
  it('stores 1 GiB holding 64 MiB of data in about 64 MiB of disk', async () => {
    const store = new FileStore({ dataDir: join(root, 'sparse') });
    const input = scatteredGiB([0, 9, 17, 40, 63, 64, 100, 127]);
    const result = await store.add('sparse-image', input.source, 1024 * MiB);
    expect(result).toMatchObject({ size: 1024 * MiB, ...input.digest() });
    const stats = statSync(join(root, 'sparse', 'sparse-image'));
    expect(stats.size).toBe(1024 * MiB);
    expect(stats.blocks * 512).toBeGreaterThanOrEqual(64 * MiB);
    expect(stats.blocks * 512).toBeLessThanOrEqual(64 * MiB + 2 * MiB);
    const back = createHash('sha512');
    for await (const part of await store.get(result.location)) back.update(part as Buffer);
    expect(back.digest('hex')).toBe(result.multihash);
    await store.delete(result.location);
  });

  it('keeps holes at 4 KiB granularity and a zero tail as a hole', async () => {
    const store = new FileStore({ dataDir: join(root, 'tail') });
    const data = Buffer.alloc(16 * MiB);
    randomBytes(4096).copy(data, 3 * MiB);
    const result = await store.add('tail', [data]);
    const stats = statSync(join(root, 'tail', 'tail'));
    expect(stats.size).toBe(16 * MiB);
    expect(stats.blocks * 512).toBeLessThanOrEqual(64 * 1024);
    expect(readFileSync(join(root, 'tail', 'tail')).equals(data)).toBe(true);
    expect(result).toMatchObject(reference(data));
  });

  it('publishes atomically: only a dot-named temporary file exists while writing', async () => {
    const dataDir = join(root, 'atomic');
    const store = new FileStore({ dataDir });
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    let seen: string[] = [];
    const source = async function* () {
      yield randomBytes(3 * MiB);
      seen = readdirSync(dataDir);
      await gate;
      yield randomBytes(10);
    };
    const adding = store.add('atomic-1', source());
    await new Promise((r) => setTimeout(r, 50));
    release();
    const result = await adding;
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatch(/^\.atomic-1\..*\.tmp$/);
    expect(readdirSync(dataDir)).toEqual(['atomic-1']);
    expect(result.location).toBe(`file://${dataDir}/atomic-1`);
  });

  it('refuses an id whose file was put there by someone else', async () => {
    const dataDir = join(root, 'foreign');
    mkdirSync(dataDir);
    writeFileSync(join(dataDir, 'taken'), 'not ours');
    const store = new FileStore({ dataDir });
    await expect(store.add('taken', [Buffer.from('x')])).rejects.toMatchObject({ code: 'EXISTS' });
    expect(readFileSync(join(dataDir, 'taken'), 'utf8')).toBe('not ours');
  });

  it('refuses locations outside its directory and symlinks inside it', async () => {
    const dataDir = join(root, 'jail');
    const store = new FileStore({ dataDir });
    const { location } = await store.add('inside', [Buffer.from('inside')]);
    const secret = join(root, 'secret');
    writeFileSync(secret, 'secret data');
    mkdirSync(join(dataDir, 'sub'));
    writeFileSync(join(dataDir, 'sub', 'nested'), 'nested');
    symlinkSync(secret, join(dataDir, 'link'));
    symlinkSync(root, join(dataDir, 'dirlink'));
    mkdirSync(join(root, 'jail2'));
    writeFileSync(join(root, 'jail2', 'x'), 'neighbour');
    writeFileSync(join(dataDir, '.hidden'), 'temp-like');
    const refused = [
      `file://${secret}`,
      `file://${dataDir}/sub/nested`,
      `file://${dataDir}/link`,
      `file://${dataDir}/dirlink/secret`,
      `file://${root}/jail2/x`,
      `file://${dataDir}/.hidden`,
      `file://${dataDir}`,
      'file:///etc/passwd',
    ];
    for (const loc of refused) {
      for (const call of [() => store.get(loc), () => store.getSize(loc), () => store.delete(loc)]) {
        await expect(call(), loc).rejects.toMatchObject({ code: 'BAD_LOCATION' });
      }
    }
    expect(readFileSync(secret, 'utf8')).toBe('secret data');
    expect(readdirSync(dataDir).sort()).toEqual(['.hidden', 'dirlink', 'inside', 'link', 'sub']);
    expect((await readAll(await store.get(location))).toString()).toBe('inside');
  });

  it('serves locations written through a symlinked data directory under either path', async () => {
    const real = join(root, 'real-dir');
    mkdirSync(real);
    symlinkSync(real, join(root, 'alias-dir'));
    const store = new FileStore({ dataDir: join(root, 'alias-dir') });
    const { location } = await store.add('via-alias', [Buffer.from('hello')]);
    expect(location).toBe(`file://${root}/alias-dir/via-alias`);
    expect(await store.getSize(`file://${real}/via-alias`)).toBe(5);
    expect(await store.getSize(`filesystem://${root}/alias-dir/via-alias`)).toBe(5);
  });

  it('does not keep input buffers alive while writing (with and without an abort signal)', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const store = new FileStore({ dataDir: join(root, 'gc') });
    for (const signal of [undefined, new AbortController().signal]) {
      const refs: Array<WeakRef<Buffer>> = [];
      let alive = -1;
      async function* source() {
        for (let i = 0; i < 24; i++) {
          const piece = randomBytes(MiB);
          refs.push(new WeakRef(piece));
          yield piece;
        }
        await new Promise((r) => setTimeout(r, 10));
        gc();
        alive = refs.slice(0, 20).filter((r) => r.deref() !== undefined).length;
      }
      const { location } = await store.add(`gc-${signal ? 'signal' : 'plain'}`, source(), undefined, { signal });
      expect(alive).toBe(0);
      await store.delete(location);
    }
  });

  it('creates a missing data directory on first write', async () => {
    const dataDir = join(root, 'deep', 'er', 'images');
    const store = new FileStore({ dataDir });
    await store.add('first', [Buffer.from('1')]);
    expect(readdirSync(dataDir)).toEqual(['first']);
  });

  it('keeps the mark as a dot file beside the image, written before the image exists', async () => {
    const dir = join(root, 'marks');
    const store = new FileStore({ dataDir: dir });
    let seen: string[] = [];
    async function* source() {
      yield randomBytes(1000);
      seen = readdirSync(dir).sort();
      yield randomBytes(1000);
    }
    const { location } = await store.add('marked-1', source(), 2000, { pending: '{"run":1}' });
    expect(seen).toHaveLength(2);
    expect(seen).toContain('.marked-1.snapstore-pending');
    expect(seen.filter((n) => n !== '.marked-1.snapstore-pending')[0]).toMatch(/^\.marked-1\.[0-9a-f]{8}\.tmp$/);
    expect(readFileSync(join(dir, '.marked-1.snapstore-pending'), 'utf8')).toBe('{"run":1}');
    expect(readdirSync(dir).sort()).toEqual(['.marked-1.snapstore-pending', 'marked-1']);
    await store.clearPending('marked-1');
    expect(readdirSync(dir)).toEqual(['marked-1']);
    await store.delete(location);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('treats a mark left by an add killed before publishing as a taken id, listed and discarded', async () => {
    const dir = join(root, 'killed');
    mkdirSync(dir, { recursive: true });
    // What a process killed mid-add leaves: the mark and a temporary file; another id's temporary file and
    // an id that merely starts the same stay untouched.
    writeFileSync(join(dir, '.half.snapstore-pending'), 'run 9');
    writeFileSync(join(dir, '.half.0123abcd.tmp'), 'partial');
    writeFileSync(join(dir, '.half.x.89abcdef.tmp'), 'another id');
    writeFileSync(join(dir, 'half.x'), 'an image');
    const store = new FileStore({ dataDir: dir });
    expect(await store.exists('half')).toBe(true);
    expect(await store.readPending('half')).toBe('run 9');
    expect(await store.listPending()).toEqual([{ imageId: 'half', location: `file://${dir}/half`, marker: 'run 9' }]);
    await expect(store.add('half', [Buffer.alloc(1)], 1)).rejects.toMatchObject({ code: 'EXISTS' });
    await expect(store.markPending('half', 'x')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(await store.discard('half')).toBe(true);
    expect(readdirSync(dir).sort()).toEqual(['.half.x.89abcdef.tmp', 'half.x']);
    expect(await store.discard('half')).toBe(false);
    expect(await store.exists('half')).toBe(false);
  });
});

