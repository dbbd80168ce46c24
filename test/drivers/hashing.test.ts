// The checksums every driver's add returns, computed inline or in two worker threads: the same digests
// as node:crypto over the same bytes, whatever mix of data, zeros and piece sizes arrives; bounded
// memory; no threads left behind.
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  InlineHasher,
  NoHasher,
  WORKER_HASH_THRESHOLD,
  WorkerHasher,
  createImageHasher,
  type ImageHasher,
} from '../../src/drivers/hashing.js';

const MiB = 1024 * 1024;

function threads(): number {
  return Number(/^Threads:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]);
}

/** Pieces as a sparse disk's copy hands them over: data of odd sizes, whole and partial zero runs. */
function mixedPieces(): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < 12; i++) {
    out.push(randomBytes(3 * MiB + 17 * i)); // several slots, not slot-aligned
    out.push(Buffer.alloc(4 * MiB)); // a hole: sent as a count
    out.push(Buffer.alloc(64 * 1024)); // a small zero run: copied like data
    out.push(randomBytes(1 + i)); // tiny
  }
  out.push(Buffer.alloc(0));
  return out;
}

async function feed(hasher: ImageHasher, pieces: Buffer[]): Promise<void> {
  for (const p of pieces) {
    const wait = hasher.update(p);
    if (wait) await wait;
  }
}

function reference(pieces: Buffer[]): { checksum: string; multihash: string } {
  const md5 = createHash('md5');
  const sha = createHash('sha512');
  for (const p of pieces) {
    md5.update(p);
    sha.update(p);
  }
  return { checksum: md5.digest('hex'), multihash: sha.digest('hex') };
}

describe('image hashing', () => {
  it('worker threads give the same md5 and sha512 as node:crypto over data, holes and odd sizes', async () => {
    const pieces = mixedPieces();
    const before = threads();
    const hasher = new WorkerHasher();
    expect(threads()).toBeGreaterThan(before);
    await feed(hasher, pieces);
    expect(await hasher.digest()).toEqual({ ...reference(pieces), hashAlgo: 'sha512' });
    // digest() releases the threads.
    expect(threads()).toBeLessThanOrEqual(before);
    await hasher.close();
  });

  it('the inline hasher agrees, and an empty input hashes to the empty digests', async () => {
    const pieces = mixedPieces().slice(0, 8);
    const inline = new InlineHasher();
    await feed(inline, pieces);
    expect(await inline.digest()).toEqual({ ...reference(pieces), hashAlgo: 'sha512' });
    const empty = new WorkerHasher();
    expect(await empty.digest()).toEqual({ ...reference([]), hashAlgo: 'sha512' });
  });

  it('holds the reader back when the threads are behind (its 16 MiB slab bounds what is buffered)', async () => {
    const hasher = new WorkerHasher();
    try {
      const piece = randomBytes(MiB);
      let waits = 0;
      for (let i = 0; i < 256; i++) {
        const wait = hasher.update(piece);
        if (wait) {
          waits++;
          await wait;
        }
      }
      // 256 MiB handed over faster than two threads can hash it: the slab (16 MiB) filled and update waited.
      expect(waits).toBeGreaterThan(0);
      const digests = await hasher.digest();
      const md5 = createHash('md5');
      for (let i = 0; i < 256; i++) md5.update(piece);
      expect(digests.checksum).toBe(md5.digest('hex'));
    } finally {
      await hasher.close();
    }
  });

  it('refuses use after close, and close is idempotent and ends the threads', async () => {
    const before = threads();
    const hasher = new WorkerHasher();
    await feed(hasher, [randomBytes(MiB)]);
    await hasher.close();
    await hasher.close();
    expect(threads()).toBeLessThanOrEqual(before);
    expect(() => hasher.update(randomBytes(10))).toThrow(/closed/);
    await expect(hasher.digest()).rejects.toThrow(/closed/);
  });

  it('picks inline hashing for small or unknown sizes, threads for large ones, none when off', async () => {
    expect(createImageHasher({ size: undefined })).toBeInstanceOf(InlineHasher);
    expect(createImageHasher({ size: WORKER_HASH_THRESHOLD - 1 })).toBeInstanceOf(InlineHasher);
    const large = createImageHasher({ size: WORKER_HASH_THRESHOLD });
    expect(large).toBeInstanceOf(WorkerHasher);
    await large.close();
    const off = createImageHasher({ size: WORKER_HASH_THRESHOLD, checksums: false });
    expect(off).toBeInstanceOf(NoHasher);
    await feed(off, [randomBytes(100)]);
    expect(await off.digest()).toBeNull();
  });
});
