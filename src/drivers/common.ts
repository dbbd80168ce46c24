// What every driver's `add` needs: cut the input into fixed-size chunks (checking the announced size and the
// abort signal), pass a sparse source's holes on as lengths, hash every byte (./hashing.ts; holes as counts),
// and find the runs of a chunk that are not zeros.
import type { Readable } from 'node:stream';
import { InvalidRange, SizeMismatch, StoreAborted, StoreError, isHole, type StoreSource } from '../store.js';
import { InternalError } from '../errors.js';
import { checkImageId } from '../location.js';
import { isAllZero, type ImageHasher } from './hashing.js';

/** What every driver's `add` checks before touching storage: a usable image id and a sane announced size. */
export function checkAddArguments(imageId: string, size: number | undefined): void {
  checkImageId(imageId);
  if (size !== undefined && (!Number.isSafeInteger(size) || size < 0)) {
    throw new StoreError('INVALID_ARGUMENT', `size ${String(size)} is not a non-negative integer`);
  }
}

export function abortedError(signal: AbortSignal, what: string): StoreAborted {
  return new StoreAborted(`${what} aborted`, { cause: signal.reason });
}

/**
 * `iterator.next()`, rejecting with StoreAborted as soon as `signal` aborts even if the source stalls. The
 * listener lives for this one call: racing against a long-lived "aborted" promise instead would attach a
 * reaction per call that keeps every result (every input buffer) reachable until the signal settles.
 */
function nextOrAbort<T>(iterator: AsyncIterator<T>, signal: AbortSignal | undefined, what: string): Promise<IteratorResult<T>> {
  if (!signal) return iterator.next();
  if (signal.aborted) return Promise.reject(abortedError(signal, what));
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(abortedError(signal, what));
    signal.addEventListener('abort', onAbort, { once: true });
    iterator.next().then(
      (result) => {
        signal.removeEventListener('abort', onAbort);
        resolve(result);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

export interface Chunk {
  /** Offset of the chunk in the image. */
  offset: number;
  /**
   * The chunk's bytes; a view into a buffer handed out by `take`. Chunks never cross a multiple of
   * `chunkSize` in the image: they are `chunkSize` long except beside a hole and at the end.
   */
  data: Buffer;
  /** The whole buffer to hand back to the pool when the chunk is written. */
  buffer: Buffer;
}

/** `length` zero bytes at `offset` that a sparse source gave as a hole: nothing to write on a thin store. */
export interface HoleRun {
  offset: number;
  hole: number;
}

export function isHoleRun(piece: Chunk | HoleRun): piece is HoleRun {
  return 'hole' in piece;
}

/** A fixed set of equal buffers, so a bounded number of chunks in flight means bounded memory. */
export class BufferPool {
  private readonly free: Buffer[] = [];

  constructor(readonly size: number, count: number) {
    for (let i = 0; i < count; i++) this.free.push(Buffer.allocUnsafe(size));
  }

  take(): Buffer {
    const buf = this.free.pop();
    // A driver takes a buffer only after making room for one; running dry is a bug in the driver.
    if (!buf) throw new InternalError('BufferPool exhausted');
    return buf;
  }

  give(buf: Buffer): void {
    this.free.push(buf);
  }
}

function asBuffer(piece: unknown): Buffer {
  if (Buffer.isBuffer(piece)) return piece;
  if (piece instanceof Uint8Array) return Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
  throw new StoreError('BAD_DATA', `the data source yielded ${typeof piece}, not bytes (a string stream needs no encoding set)`);
}

function holeLength(piece: { hole: number }): number {
  if (!Number.isSafeInteger(piece.hole) || piece.hole < 0) {
    throw new StoreError('BAD_DATA', `the data source yielded a hole of ${String(piece.hole)} bytes, not a non-negative integer`);
  }
  return piece.hole;
}

/** The chunk being gathered: where it starts in the image and how much of its buffer is taken. */
class ChunkBuilder {
  private offset = 0;
  private buffer: Buffer | null = null;
  private filled = 0;

  constructor(private readonly pool: BufferPool) {}

  /** Where the next byte goes in the image. */
  get position(): number {
    return this.offset + this.filled;
  }

  /** Takes `piece`'s bytes; yields each chunk completed at a multiple of the chunk size in the image. */
  *add(piece: Buffer): Generator<Chunk> {
    const chunkSize = this.pool.size;
    while (piece.length > 0) {
      this.buffer ??= this.pool.take();
      // Up to the next multiple of chunkSize in the image (a chunk after a hole starts unaligned).
      const n = Math.min(piece.length, chunkSize - (this.position % chunkSize));
      piece.copy(this.buffer, this.filled, 0, n);
      this.filled += n;
      piece = piece.subarray(n);
      if (this.position % chunkSize === 0) {
        const chunk = this.cut();
        if (chunk) yield chunk;
      }
    }
  }

  /** The bytes gathered so far as a chunk (its buffer then belongs to the consumer), or null when none. */
  cut(): Chunk | null {
    const taken = this.buffer;
    this.buffer = null;
    if (!taken || this.filled === 0) {
      if (taken) this.pool.give(taken);
      return null;
    }
    const chunk: Chunk = { offset: this.offset, data: taken.subarray(0, this.filled), buffer: taken };
    this.offset += this.filled;
    this.filled = 0;
    return chunk;
  }

  /** Skips a hole of `length` after what was cut. */
  skip(length: number): HoleRun {
    const hole: HoleRun = { offset: this.position, hole: length };
    this.offset = this.position + length;
    this.filled = 0;
    return hole;
  }

  /** Hands a buffer still held back to the pool. */
  release(): void {
    if (this.buffer) this.pool.give(this.buffer);
    this.buffer = null;
  }
}

/**
 * Cuts `source` into chunks of at most `pool.size` bytes, aligned to multiples of it in the image (an empty
 * source yields none), feeding every byte to `hasher`; a hole of a sparse source is yielded as one HoleRun
 * (hashed as a count of zeros), whatever its length. Each chunk's buffer comes from `pool`: the consumer
 * gives it back. With `expectedSize`, throws SizeMismatch as soon as the source runs past it, or at its end
 * when short. An abort rejects promptly even while the source is stalled. The source's own errors pass
 * through as is.
 */
export async function* chunked(
  source: StoreSource,
  pool: BufferPool,
  hasher: ImageHasher,
  options: { expectedSize?: number; signal?: AbortSignal; what: string },
): AsyncGenerator<Chunk | HoleRun, void, void> {
  const { expectedSize, signal, what } = options;
  const iterator = iterate(source);
  const builder = new ChunkBuilder(pool);
  let finished = false;
  try {
    for (;;) {
      const next = await nextOrAbort(iterator, signal, what);
      if (next.done) break;
      const hole = isHole(next.value) ? holeLength(next.value) : null;
      const piece = hole === null ? asBuffer(next.value) : null;
      const end = builder.position + (hole ?? piece?.length ?? 0);
      if (expectedSize !== undefined && end > expectedSize) {
        throw new SizeMismatch(`${what}: the data is longer than the announced ${expectedSize} bytes`, {
          context: { expected: expectedSize, atLeast: end },
        });
      }
      const behind = piece ? hasher.update(piece) : hasher.zeros(hole ?? 0);
      if (behind) await behind;
      if (piece) {
        yield* builder.add(piece);
      } else if (hole) {
        const before = builder.cut();
        if (before) yield before;
        yield builder.skip(hole);
      }
    }
    const last = builder.cut();
    if (last) yield last;
    if (expectedSize !== undefined && builder.position !== expectedSize) {
      throw new SizeMismatch(`${what}: the data is ${builder.position} bytes, ${expectedSize} were announced`, {
        context: { expected: expectedSize, actual: builder.position },
      });
    }
    finished = true;
  } finally {
    builder.release();
    if (!finished) {
      // Stop the source (a Readable is destroyed); its own rejection here is not the error to report.
      void Promise.resolve().then(() => iterator.return?.()).catch(() => {});
    }
  }
}

/**
 * Runs a driver's `add` work while an 'error' of a Readable source cannot become an uncaught exception
 * (while `add` is still preparing, creating the image, and has not started reading); the error is seen again
 * when reading starts, because a destroyed stream's iterator rethrows `stream.errored`. The guard is on
 * before `work` first awaits and off when it settles.
 */
export async function withGuardedSource<T>(source: StoreSource, work: () => Promise<T>): Promise<T> {
  const emitter = source as Partial<Readable>;
  if (typeof emitter.on !== 'function' || typeof emitter.off !== 'function') return work();
  const ignore = () => {};
  emitter.on('error', ignore);
  try {
    return await work();
  } finally {
    emitter.off('error', ignore);
  }
}

function iterate(source: StoreSource): AsyncIterator<unknown> {
  const s = source as Partial<AsyncIterable<unknown> & Iterable<unknown>>;
  const asyncIterator = s[Symbol.asyncIterator];
  if (typeof asyncIterator === 'function') return asyncIterator.call(s);
  const syncIterator = s[Symbol.iterator];
  if (typeof syncIterator === 'function' && typeof source !== 'string') {
    const sync = syncIterator.call(s);
    return {
      next: async () => sync.next(),
      return: async () => sync.return?.() ?? { done: true, value: undefined },
    };
  }
  throw new StoreError('BAD_DATA', 'the data source is neither a Readable nor an (async) iterable of bytes');
}

/**
 * The runs of `data` that hold non-zero bytes, at `granularity` (blocks aligned to `baseOffset + k*granularity`
 * in image coordinates are either written whole or skipped), adjacent non-zero blocks merged into one run.
 */
export function nonZeroRuns(data: Buffer, baseOffset: number, granularity: number): Array<{ start: number; end: number }> {
  const runs: Array<{ start: number; end: number }> = [];
  let pos = 0;
  while (pos < data.length) {
    const blockEnd = Math.min(data.length, pos + granularity - ((baseOffset + pos) % granularity));
    const zero = isAllZero(data.subarray(pos, blockEnd));
    if (!zero) {
      const last = runs[runs.length - 1];
      if (last && last.end === pos) last.end = blockEnd;
      else runs.push({ start: pos, end: blockEnd });
    }
    pos = blockEnd;
  }
  return runs;
}

/** Validates a `get` range against an image of `size` bytes; returns [start, end) clamped to the image. */
export function resolveRange(size: number, options: { offset?: number; length?: number } | undefined): { start: number; end: number } {
  const offset = options?.offset ?? 0;
  const length = options?.length;
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new InvalidRange(`offset ${String(offset)} is not a non-negative integer`);
  }
  if (length !== undefined && (!Number.isSafeInteger(length) || length < 0)) {
    throw new InvalidRange(`length ${String(length)} is not a non-negative integer`);
  }
  if (offset > size) throw new InvalidRange(`offset ${offset} is past the end of the image (${size} bytes)`);
  const end = length === undefined ? size : Math.min(size, offset + length);
  return { start: offset, end };
}

