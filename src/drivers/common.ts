// What every driver's `add` needs: cut the input into fixed-size chunks (checking the announced size and the
// abort signal), hash every byte (./hashing.ts), and find the runs of a chunk that are not zeros.
import type { Readable } from 'node:stream';
import { InvalidRange, SizeMismatch, StoreAborted, StoreError, type StoreSource } from '../store.js';
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
  /** The chunk's bytes; a view into a buffer handed out by `take` (exactly `chunkSize` long except the last). */
  data: Buffer;
  /** The whole buffer to hand back to the pool when the chunk is written. */
  buffer: Buffer;
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

/**
 * Cuts `source` into chunks of `pool.size` bytes (the last may be shorter; an empty source yields none),
 * feeding every byte to `hasher`. Each chunk's buffer comes from `pool`: the consumer gives it back.
 * With `expectedSize`, throws SizeMismatch as soon as the source runs past it, or at its end when short.
 * An abort rejects promptly even while the source is stalled. The source's own errors pass through as is.
 */
export async function* chunked(
  source: StoreSource,
  pool: BufferPool,
  hasher: ImageHasher,
  options: { expectedSize?: number; signal?: AbortSignal; what: string },
): AsyncGenerator<Chunk, void, void> {
  const { expectedSize, signal, what } = options;
  const chunkSize = pool.size;
  const iterator = iterate(source);
  let offset = 0;
  let buffer: Buffer | null = null;
  let filled = 0;
  let finished = false;
  try {
    for (;;) {
      const next = await nextOrAbort(iterator, signal, what);
      if (next.done) break;
      let piece = asBuffer(next.value);
      if (expectedSize !== undefined && offset + filled + piece.length > expectedSize) {
        throw new SizeMismatch(`${what}: the data is longer than the announced ${expectedSize} bytes`, {
          context: { expected: expectedSize, atLeast: offset + filled + piece.length },
        });
      }
      const behind = hasher.update(piece);
      if (behind) await behind;
      while (piece.length > 0) {
        buffer ??= pool.take();
        const n = Math.min(piece.length, chunkSize - filled);
        piece.copy(buffer, filled, 0, n);
        filled += n;
        piece = piece.subarray(n);
        if (filled === chunkSize) {
          const chunk: Chunk = { offset, data: buffer, buffer };
          buffer = null;
          offset += filled;
          filled = 0;
          yield chunk;
        }
      }
    }
    if (buffer && filled > 0) {
      const chunk: Chunk = { offset, data: buffer.subarray(0, filled), buffer };
      buffer = null;
      offset += filled;
      filled = 0;
      yield chunk;
    }
    if (expectedSize !== undefined && offset !== expectedSize) {
      throw new SizeMismatch(`${what}: the data is ${offset} bytes, ${expectedSize} were announced`, {
        context: { expected: expectedSize, actual: offset },
      });
    }
    finished = true;
  } finally {
    if (buffer) pool.give(buffer);
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

