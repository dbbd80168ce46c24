// MemoryStore: a third Store, written only for the tests, to show what adding a store takes — the Store
// contract, nothing in coordinator/ or gc — and to run the conformance suite (and, through the coordinator,
// a copy-path snapshot) against a backend with no layout of its own. A fake by design: it stores nothing
// outside this process. It uses the drivers' shared helpers (chunking with size and abort checks, hashing,
// range checks) the way a real new driver would.
import { Readable } from 'node:stream';
import { BufferPool, abortedError, checkAddArguments, chunked, isHoleRun, resolveRange, withGuardedSource } from '../../src/drivers/common.js';
import { checksumFields, createImageHasher } from '../../src/drivers/hashing.js';
import { checkImageId } from '../../src/location.js';
import {
  BadLocation,
  StoreClosed,
  StoreExists,
  StoreNotFound,
  type AddOptions,
  type AddResult,
  type GetOptions,
  type PendingEntry,
  type Store,
  type StoreCapabilities,
  type StoreSource,
} from '../../src/store.js';

interface Entry {
  /** null while `add` is still writing it. */
  data: Buffer | null;
  mark: string | null;
}

export interface MemoryStoreConfig {
  /** Bytes per piece of `get`'s stream (default 64 KiB). */
  chunkSize?: number;
}

export class MemoryStore implements Store {
  readonly kind = 'memory';
  readonly schemes = ['memory'] as const;
  readonly capabilities: StoreCapabilities = {
    readAccess: true,
    writeAccess: true,
    readRandom: true,
    canClone: false,
    thinProvisioning: false,
  };
  private readonly images = new Map<string, Entry>();
  private readonly chunkSize: number;
  private closed = false;

  constructor(config: MemoryStoreConfig = {}) {
    this.chunkSize = config.chunkSize ?? 64 * 1024;
  }

  /** Every id the store holds, finished or not (what a test's leftovers check looks at). */
  names(): string[] {
    return [...this.images.keys()];
  }

  /** Everything the map holds, as `id finished|unfinished mark`: the conformance suite's leftovers probe. */
  contents(): string[] {
    return [...this.images.entries()].map(([id, e]) => `${id} ${e.data === null ? 'unfinished' : 'finished'} ${e.mark ?? '-'}`).sort();
  }

  async locationOf(imageId: string): Promise<string> {
    return `memory://${checkImageId(imageId)}`;
  }

  async exists(imageId: string): Promise<boolean> {
    this.checkOpen();
    return this.images.has(checkImageId(imageId));
  }

  async add(imageId: string, data: StoreSource, size?: number, options: AddOptions = {}): Promise<AddResult> {
    return withGuardedSource(data, async () => {
      this.checkOpen();
      checkAddArguments(imageId, size);
      const what = `storing memory image ${imageId}`;
      if (options.signal?.aborted) throw abortedError(options.signal, what);
      if (this.images.has(imageId)) throw new StoreExists(`image ${imageId} already exists`, { context: { imageId } });
      // Reserved (and marked) at once: a concurrent add of the same id meets it.
      const entry: Entry = { data: null, mark: options.pending ?? null };
      this.images.set(imageId, entry);
      const hasher = createImageHasher({ checksums: options.checksums, size });
      try {
        const pool = new BufferPool(this.chunkSize, 1);
        const parts: Buffer[] = [];
        for await (const chunk of chunked(data, pool, hasher, { expectedSize: size, signal: options.signal, what })) {
          // Not thin: a sparse source's holes are stored as the zeros they stand for.
          if (isHoleRun(chunk)) {
            parts.push(Buffer.alloc(chunk.hole));
            continue;
          }
          parts.push(Buffer.from(chunk.data));
          pool.give(chunk.buffer);
        }
        const digests = await hasher.digest();
        entry.data = Buffer.concat(parts);
        return { location: await this.locationOf(imageId), size: entry.data.length, ...checksumFields(digests) };
      } catch (err) {
        if (this.images.get(imageId) === entry) this.images.delete(imageId);
        throw err;
      } finally {
        await hasher.close();
      }
    });
  }

  async get(location: string, options?: GetOptions): Promise<Readable> {
    const data = this.finished(this.resolve(location));
    const { start, end } = resolveRange(data.length, options);
    const pieces: Buffer[] = [];
    for (let at = start; at < end; at += this.chunkSize) pieces.push(data.subarray(at, Math.min(end, at + this.chunkSize)));
    return Readable.from(pieces, { objectMode: false });
  }

  async getSize(location: string): Promise<number> {
    return this.finished(this.resolve(location)).length;
  }

  async delete(location: string): Promise<void> {
    const imageId = this.resolve(location);
    this.finished(imageId);
    this.images.delete(imageId);
  }

  async markPending(imageId: string, marker: string): Promise<void> {
    this.checkOpen();
    const entry = this.images.get(checkImageId(imageId));
    if (!entry) throw new StoreNotFound(`no memory image ${imageId}`, { context: { imageId } });
    entry.mark = marker;
  }

  async clearPending(imageId: string): Promise<void> {
    this.checkOpen();
    const entry = this.images.get(checkImageId(imageId));
    if (entry) entry.mark = null;
  }

  async readPending(imageId: string): Promise<string | null> {
    this.checkOpen();
    return this.images.get(checkImageId(imageId))?.mark ?? null;
  }

  async listPending(): Promise<PendingEntry[]> {
    this.checkOpen();
    const out: PendingEntry[] = [];
    for (const [imageId, { mark }] of this.images) {
      if (mark !== null) out.push({ imageId, location: await this.locationOf(imageId), marker: mark });
    }
    return out;
  }

  async discard(imageId: string): Promise<boolean> {
    this.checkOpen();
    return this.images.delete(checkImageId(imageId));
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private checkOpen(): void {
    if (this.closed) throw new StoreClosed('the MemoryStore is closed');
  }

  /** The image id a `memory://<id>` location names. Never echoes the location (it may hold credentials). */
  private resolve(location: string): string {
    this.checkOpen();
    const m = /^memory:\/\/([^/?#]*)$/.exec(location);
    try {
      if (m) return checkImageId(m[1]);
    } catch {
      // reported below
    }
    throw new BadLocation('not a memory store location (want memory://<image id>)', { context: { reason: 'scheme' } });
  }

  private finished(imageId: string): Buffer {
    const data = this.images.get(imageId)?.data;
    if (!data) throw new StoreNotFound(`no memory image ${imageId}`, { context: { imageId } });
    return data;
  }
}
