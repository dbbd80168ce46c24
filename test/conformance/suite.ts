// The ONE suite every Store driver passes (unstorage/keyv style): a driver test file calls
// `testStore(name, factory, options)` and nothing else is needed for the common contract.
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Store, StoreCapabilities, StorePiece } from '../../src/store.js';

export interface StoreUnderTest {
  store: Store;
  /**
   * Everything the backend holds in the store's own scope, whole and without name filters: the pool of its
   * own (images, snapshots with the trash namespace, `snapstore.*` metadata, trash), its directory (hidden
   * files included), its map. Nothing else may write there while the suite runs: the suite compares the
   * listing before and after each case.
   */
  probe(): Promise<unknown>;
}

export interface SuiteOptions extends StoreCapabilities {
  /** The driver's write chunk size: sizes around it are exercised. */
  chunkSize: number;
  /** The URL schemes the driver declares, exactly; its locations use the first. */
  schemes: string[];
}

export function reference(data: Uint8Array): { checksum: string; multihash: string } {
  return {
    checksum: createHash('md5').update(data).digest('hex'),
    multihash: createHash('sha512').update(data).digest('hex'),
  };
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

/** Yields `data` in pieces of irregular sizes (some empty), as a network stream would. */
export async function* irregular(data: Buffer, seed = 7): AsyncGenerator<Buffer> {
  let pos = 0;
  let x = seed;
  while (pos < data.length) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    const n = x % 5 === 0 ? 0 : 1 + (x % (700 * 1024));
    yield data.subarray(pos, pos + n);
    pos += n;
  }
}

/** Zeros with islands of random data at the given [offset, length] pairs. */
export function sparse(size: number, islands: Array<[number, number]>): Buffer {
  const data = Buffer.alloc(size);
  for (const [offset, length] of islands) randomBytes(length).copy(data, offset);
  return data;
}

const SECRET = 'AQBx5FNhAAAAABAAtAn1Swme3Q1vC1KZ2fNtwQ==';

/** Malformed locations every driver refuses with BadLocation, whatever its scheme. */
export const MALFORMED_LOCATIONS = [
  '',
  'rbd://',
  'rbd:///pool/image/snap',
  'rbd://fsid/pool/image/snap/extra',
  `rbd://user:${SECRET}@fsid/pool/image/snap`,
  'file://relative/path',
  'file:///data/../etc/passwd',
  'file:///data/images/x?y=1',
  'http://example.com/image',
  'rbd://fsid/pool/imäge/snap',
  'rbd://fsid/pool/im\nage/snap',
];

export function testStore(name: string, factory: () => Promise<StoreUnderTest>, options: SuiteOptions): void {
  describe(`Store conformance: ${name}`, () => {
    let store: Store;
    let probe: () => Promise<unknown>;
    /** The listing when the suite started, and when the current case started. */
    let initial: unknown;
    let before: unknown;
    const expectNothingLeft = async (since = before) => {
      expect(await probe(), 'leftovers: the store now vs. before the case').toEqual(since);
    };
    const idPrefix = `conf-${name.replace(/[^A-Za-z0-9]/g, '')}-${randomBytes(3).toString('hex')}`;
    let serial = 0;
    const newId = () => `${idPrefix}-${++serial}`;
    const c = options.chunkSize;

    beforeAll(async () => {
      ({ store, probe } = await factory());
      initial = await probe();
    });

    beforeEach(async () => {
      before = await probe();
    });

    afterAll(async () => {
      await store?.close();
    });

    async function roundTrip(data: Buffer, announce: boolean, source: AsyncIterable<StorePiece> | Readable = irregular(data)) {
      const id = newId();
      const result = await store.add(id, source, announce ? data.length : undefined);
      expect(result.size).toBe(data.length);
      expect({ checksum: result.checksum, multihash: result.multihash }).toEqual(reference(data));
      expect(result.hashAlgo).toBe('sha512');
      expect(await store.getSize(result.location)).toBe(data.length);
      const back = await readAll(await store.get(result.location));
      expect(back.length).toBe(data.length);
      expect(back.equals(data)).toBe(true);
      await store.delete(result.location);
      await expectNothingLeft();
    }

    it('adds without checksums when asked: nulls, same bytes', async () => {
      const data = randomBytes(c + 4321);
      const id = newId();
      const result = await store.add(id, Readable.from(irregular(data)), data.length, { checksums: false });
      expect(result).toMatchObject({ size: data.length, checksum: null, multihash: null, hashAlgo: null });
      expect((await readAll(await store.get(result.location))).equals(data)).toBe(true);
      await store.delete(result.location);
      await expectNothingLeft();
    });

    it('declares its schemes and capabilities', () => {
      expect([...store.schemes]).toEqual(options.schemes);
      expect(store.clones !== undefined).toBe(options.canClone);
      expect(store.capabilities).toMatchObject({
        readAccess: options.readAccess,
        writeAccess: options.writeAccess,
        readRandom: options.readRandom,
        canClone: options.canClone,
        thinProvisioning: options.thinProvisioning,
      });
    });

    it('adds, sizes, reads and deletes an image; hashes match a reference', async () => {
      const data = randomBytes(2 * c + 12345);
      const id = newId();
      const result = await store.add(id, Readable.from(irregular(data)), data.length);
      expect(result.location.startsWith(`${options.schemes[0]}://`)).toBe(true);
      expect(result.location).toContain(id);
      expect(result).toMatchObject({ size: data.length, ...reference(data), hashAlgo: 'sha512' });
      expect(await store.getSize(result.location)).toBe(data.length);
      expect((await readAll(await store.get(result.location))).equals(data)).toBe(true);
      await store.delete(result.location);
      await expect(store.getSize(result.location)).rejects.toMatchObject({ code: 'NOT_FOUND' });
      await expect(store.get(result.location)).rejects.toMatchObject({ code: 'NOT_FOUND' });
      await expect(store.delete(result.location)).rejects.toMatchObject({ code: 'NOT_FOUND' });
      await expectNothingLeft();
    });

    it('stores an empty image, with and without a size', async () => {
      await roundTrip(Buffer.alloc(0), true, Readable.from([]));
      await roundTrip(Buffer.alloc(0), false, (async function* () {})());
    });

    it('stores sizes around the chunk size and a single byte', async () => {
      for (const size of [1, c - 1, c, c + 1]) await roundTrip(randomBytes(size), true);
    });

    it('stores a stream of unknown size', async () => {
      await roundTrip(randomBytes(3 * c + 777), false);
    });

    it('returns zeros where the input had zeros and counts them in the hashes', async () => {
      const data = sparse(6 * c + 100, [
        [5, 10],
        [c - 3, 6],
        [3 * c, c],
        [6 * c + 99, 1],
      ]);
      await roundTrip(data, true);
      await roundTrip(Buffer.alloc(2 * c + 5), false);
    });

    it('stores a sparse source (holes given as lengths): the bytes and hashes of the zeros they stand for', async () => {
      // Leading, unaligned, adjacent, empty and trailing holes, data crossing a chunk boundary after a hole.
      const layout: Array<number | Buffer> = [c + 3, randomBytes(10), 0, c - 7, 5, randomBytes(c + 100), 2 * c + 1, randomBytes(1), c];
      const size = layout.reduce<number>((n, p) => n + (typeof p === 'number' ? p : p.length), 0);
      const data = Buffer.concat(layout.map((p) => (typeof p === 'number' ? Buffer.alloc(p) : p)));
      expect(data.length).toBe(size);
      const pieces = () => layout.map((p) => (typeof p === 'number' ? { hole: p } : p));
      await roundTrip(data, true, (async function* () {
        yield* pieces();
      })());
      // Unknown size, from a plain iterable.
      const id = newId();
      const result = await store.add(id, pieces(), undefined);
      expect(result).toMatchObject({ size, ...reference(data) });
      expect((await readAll(await store.get(result.location))).equals(data)).toBe(true);
      await store.delete(result.location);
      await expectNothingLeft();
    });

    it('refuses a sparse source whose holes run past the announced size, or a malformed hole, and leaves nothing', async () => {
      const id = newId();
      await expect(store.add(id, [randomBytes(10), { hole: c }], c)).rejects.toMatchObject({ code: 'SIZE_MISMATCH' });
      await expectNothingLeft();
      await expect(store.add(id, [{ hole: c }], c + 1)).rejects.toMatchObject({ code: 'SIZE_MISMATCH' });
      await expectNothingLeft();
      await expect(store.add(id, [{ hole: -1 }], 0)).rejects.toMatchObject({ code: 'BAD_DATA' });
      await expectNothingLeft();
      await expect(store.add(id, [{ hole: 1.5 }])).rejects.toMatchObject({ code: 'BAD_DATA' });
      await expectNothingLeft();
    });

    // Holes cost a thin store nothing per byte (no TiB here: removing an image without an object map visits every
    // object). Only thin stores are given this case: a thick one would write every zero of it.
    if (options.thinProvisioning) it('stores a sparse source 1024 chunks long holding 1 MiB of data, holes read back as zeros', async () => {
      const MiB = 1024 * 1024;
      const size = 1024 * c + MiB;
      const head = randomBytes(4096);
      const tail = randomBytes(MiB);
      const id = newId();
      const result = await store.add(id, [head, { hole: 512 * c - 4096 }, { hole: 512 * c }, tail], size, { checksums: false });
      expect(result).toMatchObject({ size, checksum: null });
      expect(await store.getSize(result.location)).toBe(size);
      expect((await readAll(await store.get(result.location, { length: 4096 }))).equals(head)).toBe(true);
      expect((await readAll(await store.get(result.location, { offset: size - MiB }))).equals(tail)).toBe(true);
      const middle = await readAll(await store.get(result.location, { offset: 512 * c - 3, length: 2 * c }));
      expect(middle.length).toBe(2 * c);
      expect(middle.every((b) => b === 0)).toBe(true);
      await store.delete(result.location);
      await expectNothingLeft();
    });

    it('reads ranges, clamping at the end and refusing offsets past it', async () => {
      const data = randomBytes(2 * c + 1000);
      const { location } = await store.add(newId(), irregular(data), data.length);
      try {
        const range = async (offset?: number, length?: number) => readAll(await store.get(location, { offset, length }));
        expect((await range(0, 10)).equals(data.subarray(0, 10))).toBe(true);
        expect((await range(c - 5, 10)).equals(data.subarray(c - 5, c + 5))).toBe(true);
        expect((await range(c + 17)).equals(data.subarray(c + 17))).toBe(true);
        expect((await range(data.length - 3, 100)).equals(data.subarray(data.length - 3))).toBe(true);
        expect((await range(data.length)).length).toBe(0);
        expect((await range(5, 0)).length).toBe(0);
        await expect(store.get(location, { offset: data.length + 1 })).rejects.toMatchObject({ code: 'INVALID_RANGE' });
        await expect(store.get(location, { offset: -1 })).rejects.toMatchObject({ code: 'INVALID_RANGE' });
        await expect(store.get(location, { offset: 0, length: -2 })).rejects.toMatchObject({ code: 'INVALID_RANGE' });
        await expect(store.get(location, { offset: 1.5 })).rejects.toMatchObject({ code: 'INVALID_RANGE' });
      } finally {
        await store.delete(location);
      }
    });

    it('stops cleanly when the reader stops early, and the image can be deleted after', async () => {
      const data = randomBytes(3 * c);
      const id = newId();
      const { location } = await store.add(id, irregular(data), data.length);
      const stream = await store.get(location);
      const reader = stream[Symbol.asyncIterator]();
      // The first piece is asserted outside any loop: a stream that ends at once must fail here.
      const first = await reader.next();
      expect(first.done).toBe(false);
      const part = first.value as Buffer;
      expect(part.length).toBeGreaterThan(0);
      expect(part.equals(data.subarray(0, part.length))).toBe(true);
      await reader.return?.();
      expect(stream.destroyed).toBe(true);
      await store.delete(location);
      await expectNothingLeft();
    });

    it('refuses an id that is already stored and leaves the original intact', async () => {
      const id = newId();
      const data = randomBytes(1000);
      const { location } = await store.add(id, irregular(data));
      try {
        await expect(store.add(id, irregular(randomBytes(500)), 500)).rejects.toMatchObject({ code: 'EXISTS' });
        expect((await readAll(await store.get(location))).equals(data)).toBe(true);
      } finally {
        await store.delete(location);
      }
      await expectNothingLeft();
    });

    it('handles concurrent adds of different ids', async () => {
      const inputs = Array.from({ length: 4 }, (_, i) => ({ id: newId(), data: randomBytes(c + i * 4099) }));
      const results = await Promise.all(inputs.map(({ id, data }) => store.add(id, irregular(data), data.length)));
      for (const [i, result] of results.entries()) {
        expect(result).toMatchObject(reference(inputs[i]!.data));
        expect((await readAll(await store.get(result.location))).equals(inputs[i]!.data)).toBe(true);
      }
      await Promise.all(results.map((r) => store.delete(r.location)));
      await expectNothingLeft();
    });

    it('lets exactly one of two concurrent adds of the same id win', async () => {
      const id = newId();
      const a = randomBytes(c + 1);
      const b = randomBytes(c + 2);
      const settled = await Promise.allSettled([store.add(id, irregular(a), a.length), store.add(id, irregular(b), b.length)]);
      const won = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
      const lost = settled.flatMap((s) => (s.status === 'rejected' ? [s.reason as unknown] : []));
      expect(won).toHaveLength(1);
      expect(lost).toHaveLength(1);
      expect(lost[0]).toMatchObject({ code: 'EXISTS' });
      const winner = won[0]!;
      const back = await readAll(await store.get(winner.location));
      expect(back.equals(winner.size === a.length ? a : b)).toBe(true);
      await store.delete(winner.location);
      await expectNothingLeft();
    });

    it('refuses a stream shorter or longer than announced and leaves nothing', async () => {
      const id = newId();
      const data = randomBytes(c + 10);
      await expect(store.add(id, irregular(data), data.length + 1)).rejects.toMatchObject({ code: 'SIZE_MISMATCH' });
      await expectNothingLeft();
      await expect(store.add(id, irregular(data), data.length - 1)).rejects.toMatchObject({ code: 'SIZE_MISMATCH' });
      await expectNothingLeft();
      await expect(store.add(id, irregular(data), 0)).rejects.toMatchObject({ code: 'SIZE_MISMATCH' });
      await expectNothingLeft();
      // The id is free again.
      const { location } = await store.add(id, irregular(data), data.length);
      await store.delete(location);
    });

    it('passes a source error through and leaves nothing', async () => {
      const id = newId();
      const boom = new Error('source broke');
      const failing = async function* () {
        yield randomBytes(c);
        yield randomBytes(c / 2);
        throw boom;
      };
      await expect(store.add(id, failing(), 4 * c)).rejects.toBe(boom);
      await expectNothingLeft();
      for (const delay of [-1, 0, 20]) {
        // A Readable failing before add reads it (-1: already failed; 0: while add prepares) or while it reads.
        const readable = new Readable({ read() {} });
        readable.push(randomBytes(1000));
        const fail = () => readable.destroy(new Error('socket hang up'));
        if (delay < 0) fail();
        else setTimeout(fail, delay);
        await expect(store.add(id, readable)).rejects.toThrow('socket hang up');
        await expectNothingLeft();
      }
    });

    it('aborts on the signal, before or during the write, even while the source stalls, and leaves nothing', async () => {
      const id = newId();
      await expect(store.add(id, irregular(randomBytes(10)), 10, { signal: AbortSignal.abort() })).rejects.toMatchObject({
        code: 'CANCELLED',
      });
      await expectNothingLeft();

      // The source stalls for good once it has given its first chunk: it is released only after add has
      // settled, so a driver that would notice the abort only at the next chunk never settles and fails.
      const stalled = new AbortController();
      let release = () => {};
      const stall = new Promise<void>((resolve) => (release = resolve));
      const stalling = async function* () {
        yield randomBytes(c * 2 + 5);
        setTimeout(() => stalled.abort(new Error('user canceled')), 20);
        await stall;
      };
      try {
        const outcome = await Promise.race([
          store.add(id, stalling(), undefined, { signal: stalled.signal }).then(
            () => 'added',
            (err: unknown) => err,
          ),
          // A bound that is the behaviour under test: the abort must end add while the source is stalled.
          new Promise((resolve) => setTimeout(() => resolve('still running 20 s after the abort'), 20_000)),
        ]);
        expect(outcome).toMatchObject({ code: 'CANCELLED' });
      } finally {
        release();
      }
      await expectNothingLeft();

      const midway = new AbortController();
      const flowing = async function* () {
        for (let i = 0; i < 12; i++) {
          if (i === 6) midway.abort();
          yield randomBytes(c / 2);
        }
      };
      await expect(store.add(id, flowing(), undefined, { signal: midway.signal })).rejects.toMatchObject({ code: 'CANCELLED' });
      await expectNothingLeft();
    });

    it("refuses malformed locations and other drivers' locations with BadLocation", async () => {
      const other = store.schemes.includes('rbd')
        ? 'file:///var/lib/glance/images/0f3a2b4c-1111-2222-3333-444455556666'
        : 'rbd://e0b3c4d2-0000-4000-8000-000000000000/images/0f3a2b4c/snap';
      for (const location of [...MALFORMED_LOCATIONS, other]) {
        for (const call of [() => store.get(location), () => store.getSize(location), () => store.delete(location)]) {
          const err = await call().then(
            () => null,
            (e: unknown) => e,
          );
          expect(err, JSON.stringify(location)).toMatchObject({ code: 'BAD_LOCATION' });
          expect(JSON.stringify(err) + String((err as Error).message)).not.toContain(SECRET);
        }
      }
    });

    it('refuses image ids that cannot name an image', async () => {
      for (const id of ['', '.', '..', '../x', 'a/b', '.hidden', 'a b', 'é', 'a\u0000b', 'x'.repeat(256)]) {
        await expect(store.add(id, irregular(Buffer.alloc(1)), 1), JSON.stringify(id)).rejects.toMatchObject({
          code: 'INVALID_IMAGE_ID',
        });
      }
    });

    it('can be closed twice and refuses work afterwards', async () => {
      const own = await factory();
      await own.store.close();
      await own.store.close();
      await expect(own.store.add(newId(), irregular(Buffer.alloc(1)), 1)).rejects.toMatchObject({ code: 'CLOSED' });
    });

    it('knows where an image goes and whether one is there, before, after add and after delete', async () => {
      const id = newId();
      const where = await store.locationOf(id);
      expect(where.startsWith(`${options.schemes[0]}://`)).toBe(true);
      expect(where).toContain(id);
      expect(await store.exists(id)).toBe(false);
      const { location } = await store.add(id, irregular(randomBytes(1000)), 1000);
      expect(location).toBe(where);
      expect(await store.locationOf(id)).toBe(where);
      expect(await store.exists(id)).toBe(true);
      expect(await store.exists(`${id}-other`)).toBe(false);
      await store.delete(location);
      expect(await store.exists(id)).toBe(false);
      await expect(store.locationOf('../x')).rejects.toMatchObject({ code: 'INVALID_IMAGE_ID' });
      await expect(store.exists('a/b')).rejects.toMatchObject({ code: 'INVALID_IMAGE_ID' });
      await expectNothingLeft();
    });

    it('marks an image pending, reads, lists, replaces and clears the mark', async () => {
      const id = newId();
      const { location } = await store.add(id, irregular(randomBytes(c + 3)), c + 3);
      try {
        // The store's scope is the suite's own: every mark it lists is this case's.
        const mine = () => store.listPending();
        expect(await store.readPending(id)).toBeNull();
        expect(await mine()).toEqual([]);
        const text = JSON.stringify({ runId: id, note: 'ünïcode and "quotes"' });
        await store.markPending(id, text);
        expect(await store.readPending(id)).toBe(text);
        expect(await mine()).toEqual([{ imageId: id, location, marker: text }]);
        await store.markPending(id, 'second');
        expect(await store.readPending(id)).toBe('second');
        expect(await mine()).toEqual([{ imageId: id, location, marker: 'second' }]);
        // The mark does not touch the data.
        expect(await store.getSize(location)).toBe(c + 3);
        await store.clearPending(id);
        expect(await store.readPending(id)).toBeNull();
        expect(await mine()).toEqual([]);
        await store.clearPending(id);
        expect(await store.exists(id)).toBe(true);
      } finally {
        await store.delete(location);
      }
      await expectNothingLeft();
    });

    it('refuses to mark a missing image; clearing or reading the mark of one is fine', async () => {
      const id = newId();
      await expect(store.markPending(id, 'x')).rejects.toMatchObject({ code: 'NOT_FOUND' });
      expect(await store.exists(id)).toBe(false);
      await store.clearPending(id);
      expect(await store.readPending(id)).toBeNull();
      expect((await store.listPending()).map((e) => e.imageId)).not.toContain(id);
      await expectNothingLeft();
    });

    it('deletes a marked image with its mark', async () => {
      const id = newId();
      const { location } = await store.add(id, irregular(randomBytes(100)), 100, { pending: 'doomed' });
      await store.delete(location);
      expect(await store.readPending(id)).toBeNull();
      expect(await store.exists(id)).toBe(false);
      await expectNothingLeft();
    });

    it('adds an image marked pending from its creation on; the mark stays until cleared', async () => {
      const id = newId();
      const data = randomBytes(2 * c + 9);
      // The source holds back its second half until the mark has been seen mid-write.
      let release = () => {};
      const held = new Promise<void>((resolve) => (release = resolve));
      let firstHalfTaken = () => {};
      const halfway = new Promise<void>((resolve) => (firstHalfTaken = resolve));
      const source = async function* () {
        yield data.subarray(0, c + 4);
        firstHalfTaken();
        await held;
        yield data.subarray(c + 4);
      };
      const adding = store.add(id, source(), data.length, { pending: 'run 1' });
      try {
        await halfway;
        expect(await store.exists(id)).toBe(true);
        expect(await store.readPending(id)).toBe('run 1');
        expect((await store.listPending()).filter((e) => e.imageId === id).map((e) => e.marker)).toEqual(['run 1']);
      } finally {
        release();
      }
      const result = await adding;
      try {
        expect(result).toMatchObject({ size: data.length, ...reference(data) });
        expect(await store.readPending(id)).toBe('run 1');
        expect((await store.listPending()).filter((e) => e.imageId === id)).toEqual([
          { imageId: id, location: result.location, marker: 'run 1' },
        ]);
        expect((await readAll(await store.get(result.location))).equals(data)).toBe(true);
        await store.clearPending(id);
        expect(await store.readPending(id)).toBeNull();
      } finally {
        await store.delete(result.location);
      }
      await expectNothingLeft();
    });

    it('an add with a pending mark that fails or is aborted leaves nothing, no mark either', async () => {
      const id = newId();
      const gone = async () => {
        await expectNothingLeft();
        expect(await store.readPending(id)).toBeNull();
        expect(await store.exists(id)).toBe(false);
        expect((await store.listPending()).map((e) => e.imageId)).not.toContain(id);
      };
      const data = randomBytes(c + 10);
      await expect(store.add(id, irregular(data), data.length + 1, { pending: 'p' })).rejects.toMatchObject({ code: 'SIZE_MISMATCH' });
      await gone();
      const boom = new Error('source broke');
      const failing = async function* () {
        yield randomBytes(c);
        throw boom;
      };
      await expect(store.add(id, failing(), undefined, { pending: 'p' })).rejects.toBe(boom);
      await gone();
      const midway = new AbortController();
      const flowing = async function* () {
        for (let i = 0; i < 6; i++) {
          if (i === 3) midway.abort();
          yield randomBytes(c / 2);
        }
      };
      await expect(store.add(id, flowing(), undefined, { pending: 'p', signal: midway.signal })).rejects.toMatchObject({ code: 'CANCELLED' });
      await gone();
      // Taken ids stay refused, the original keeping no mark of the refused add.
      const { location } = await store.add(id, irregular(data), data.length);
      await expect(store.add(id, irregular(data), data.length, { pending: 'p' })).rejects.toMatchObject({ code: 'EXISTS' });
      expect(await store.readPending(id)).toBeNull();
      await store.delete(location);
      await gone();
    });

    it('discards a pending image with all the driver kept for it; a missing id is not an error', async () => {
      const id = newId();
      await store.add(id, irregular(randomBytes(c + 1)), c + 1, { pending: 'to discard' });
      expect(await store.discard(id)).toBe(true);
      await expectNothingLeft();
      expect(await store.exists(id)).toBe(false);
      expect(await store.readPending(id)).toBeNull();
      expect((await store.listPending()).map((e) => e.imageId)).not.toContain(id);
      expect(await store.discard(id)).toBe(false);
      expect(await store.discard(newId())).toBe(false);
      // The id is free again.
      const { location } = await store.add(id, irregular(randomBytes(10)), 10);
      await store.delete(location);
      await expectNothingLeft();
    });

    it('leaves nothing of this suite behind', async () => {
      await expectNothingLeft(initial);
    });
  });
}
