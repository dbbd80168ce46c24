// The data of a point-in-time RBD image (opened at a snapshot) for a Store or a Glance upload: only the
// allocated extents are read from Ceph, several aio reads in flight at once. For a Store the holes are
// handed on as lengths (`{ hole: n }`, see Store's Hole): a hole costs one item whatever its size, the store
// skips it and the hashers count it. Only a Glance upload, which needs every byte, turns holes into zeros.
import { FEATURES, type Extent, type Image } from 'ceph-rbd-napi';
import { SnapstoreError } from '../errors.js';
import { isHole, type Hole, type StorePiece } from '../store.js';

const MiB = 1024 * 1024;
/** Pieces of zeros a Glance upload gets for a hole. */
export const ZERO_PIECE_BYTES = MiB;
const ZEROS = Buffer.alloc(ZERO_PIECE_BYTES);

/** How the copy reads: the size of one read and how many are in flight. */
export interface ReadPlan {
  pieceBytes: number;
  parallel: number;
}

/**
 * The read plan on a connection whose `rbd_concurrent_management_ops` is `concurrentOps`: that many reads
 * in flight, as `rbd export` keeps that many objects in flight, but of 1 MiB whatever the object size.
 * librados holds its own copy of every byte in flight: reads of one 4 MiB object each cost ~65 MiB more
 * peak RSS than 1 MiB reads for the same copy time on the test bed (a 2 GiB disk with 512 MiB written).
 * `objectSize` only caps the read of an image with smaller objects (down to 64 KiB), so a read stays in one object.
 */
export function readPlan(objectSize: number, concurrentOps: number): ReadPlan {
  const pieceBytes = Math.max(64 * 1024, Math.min(MiB, objectSize));
  const parallel = Number.isSafeInteger(concurrentOps) && concurrentOps > 0 ? Math.min(concurrentOps, 32) : 10;
  return { pieceBytes, parallel };
}

/** RBD_FLAG_FAST_DIFF_INVALID (librbd.h): the object map cannot answer a diff. */
export const FAST_DIFF_INVALID = 2n;
/**
 * Listing the data pool is cheaper than librbd's object-by-object walk while the pool holds at most this
 * many objects per object of the image: a listing op returns ~1000 names, while diff_iterate keeps
 * rbd_concurrent_management_ops single-object ops in flight (a 1 TiB image: 262,144 of them, ~10 s).
 */
const LIST_PER_IMAGE_OBJECT = 32;
/**
 * Nor below this many objects (16 GiB of 4 MiB objects): a listing costs at least one op per placement
 * group of the pool (hundreds to thousands on a real cluster), the walk of a small image a few hundred.
 */
const LIST_MIN_IMAGE_OBJECTS = 4096;

/**
 * The allocated extents of the image (open at a snapshot), a whole object each, found the cheapest way Ceph
 * offers: from the object map where fast-diff is valid (rbd_diff_iterate2 in whole-object mode); without
 * one, for a large image without a parent in a pool not much larger than it, by listing its data objects
 * (objects written after the snapshot may be among them: they read as zeros); else librbd object by object.
 */
export async function allocatedExtents(image: Pick<Image, 'stat' | 'flags' | 'diffIterate' | 'dataObjects'>): Promise<Extent[]> {
  const st = await image.stat();
  const fastDiff = await fastDiffValid(image, st);
  // A clone's data is partly its parent's, which the listing does not see.
  if (!fastDiff && st.parent === null && st.numObjects >= LIST_MIN_IMAGE_OBJECTS) {
    const objects = await image.dataObjects({ maxPoolObjects: st.numObjects * LIST_PER_IMAGE_OBJECT });
    if (objects !== null) return objectExtents(objects, st.size, st.objectSize);
  }
  return image.diffIterate({ wholeObject: true });
}

/** Whether the image (open at a snapshot, or its head) has an object map that can answer a diff. */
export async function fastDiffValid(image: Pick<Image, 'flags'>, st: { features: bigint }): Promise<boolean> {
  return (st.features & FEATURES['fast-diff']) !== 0n && ((await image.flags()) & FAST_DIFF_INVALID) === 0n;
}

/** Extents of the objects numbered `objects` (ascending) of an image of `size`, adjacent ones merged. */
export function objectExtents(objects: readonly number[], size: number, objectSize: number): Extent[] {
  const out: Extent[] = [];
  for (const n of objects) {
    const offset = n * objectSize;
    // Objects past the snapshot's size (the image grew after it) hold nothing of it.
    if (offset >= size) break;
    const length = Math.min(objectSize, size - offset);
    const last = out[out.length - 1];
    if (last && last.offset + last.length === offset) last.length += length;
    else out.push({ offset, length, exists: true });
  }
  return out;
}

export interface Piece {
  offset: number;
  length: number;
  data: boolean;
}

/**
 * [0, size) as data pieces of at most `pieceBytes` (cut at its multiples in the image, so a read never
 * spans two objects when it divides the object size) where an extent exists, and one piece per hole.
 */
export function* pieces(extents: readonly Extent[], size: number, pieceBytes: number): Generator<Piece> {
  const sorted = extents.filter((e) => e.exists && e.length > 0).sort((a, b) => a.offset - b.offset);
  let pos = 0;
  const hole = function* (end: number): Generator<Piece> {
    if (end > pos) yield { offset: pos, length: end - pos, data: false };
    pos = Math.max(pos, end);
  };
  for (const e of sorted) {
    const start = Math.max(e.offset, pos);
    const end = Math.min(e.offset + e.length, size);
    if (end <= start) continue;
    yield* hole(start);
    while (pos < end) {
      const length = Math.min(pieceBytes - (pos % pieceBytes), end - pos);
      yield { offset: pos, length, data: true };
      pos += length;
    }
  }
  yield* hole(size);
}

export function allocatedBytes(extents: readonly Extent[]): number {
  return extents.reduce((n, e) => n + (e.exists ? e.length : 0), 0);
}

export interface ExtentStreamOptions {
  /** Reads in flight and their size (default readPlan(4 MiB, 10): Ceph's default object size and ops). */
  plan?: ReadPlan;
  /** Called after each piece is handed on; return false to stop (the stream then throws `stop()`). */
  progress?: (done: number, total: number) => boolean;
  stop?: () => unknown;
  /**
   * Read into a fixed ring of `parallel + 1` buffers instead of a new buffer per piece, so the garbage of
   * a long copy does not wait for V8 to collect it (tens of MiB of RSS). Only for consumers that are done
   * with a yielded buffer when they ask for the next one (the stores' add copies every piece); a consumer
   * that keeps buffers (a socket write queue) must not use it.
   */
  reuseBuffers?: boolean;
}

interface InFlight {
  piece: Piece;
  read: Promise<Buffer> | null;
  into: Buffer | undefined;
}

/**
 * Yields the image's data in order: buffers where extents exist, `{ hole: n }` for each gap. Reads run ahead
 * of the consumer by at most `parallel` pieces, so memory stays bounded by parallel × pieceBytes whatever
 * the image size; a hole costs one item and no I/O whatever its length.
 */
export async function* sparseExtentStream(
  image: Pick<Image, 'read'>,
  extents: readonly Extent[],
  size: number,
  options: ExtentStreamOptions = {},
): AsyncGenerator<Buffer | Hole, void, undefined> {
  const { pieceBytes, parallel } = options.plan ?? readPlan(4 * MiB, 10);
  const source = pieces(extents, size, pieceBytes);
  const window: InFlight[] = [];
  const ring: Buffer[] = [];
  if (options.reuseBuffers) for (let i = 0; i <= parallel; i++) ring.push(Buffer.allocUnsafe(pieceBytes));
  let done = 0;
  const fill = () => {
    // Holes take no read: only data pieces count against `parallel`.
    while (window.filter((w) => w.read).length < parallel) {
      const next = source.next();
      if (next.done) return;
      const piece = next.value;
      const into = piece.data ? ring.pop() : undefined;
      const read = piece.data ? image.read(piece.offset, piece.length, into?.subarray(0, piece.length)) : null;
      // A read failing while earlier pieces are still being consumed is reported when its turn comes.
      read?.catch(() => {});
      window.push({ piece, read, into });
    }
  };
  try {
    fill();
    for (let next = window.shift(); next !== undefined; next = window.shift()) {
      const { piece, read, into } = next;
      let item: Buffer | Hole;
      if (read) {
        // Return to the event loop once per data piece: reads that already finished would otherwise hand
        // the consumer piece after piece within one macrotask (and it hashes each of them).
        await new Promise<void>((resolve) => setImmediate(resolve));
        item = await read;
        // A snapshot cannot shrink, but a short read must never shift the bytes after it.
        if (item.length < piece.length) item = Buffer.concat([item, Buffer.alloc(piece.length - item.length)]);
      } else {
        item = { hole: piece.length };
      }
      fill();
      yield item;
      // The consumer asked for the next piece: it is done with this buffer.
      if (into) ring.push(into);
      done += piece.length;
      if (options.progress && !options.progress(done, size)) throw options.stop?.() ?? new SnapstoreError('CANCELLED', 'the copy was stopped');
    }
  } finally {
    // Let reads still in flight finish before the caller closes the image.
    await Promise.allSettled(window.map((w) => w.read).filter((r): r is Promise<Buffer> => r !== null));
  }
}

/** The same data with every hole as zeros (for a consumer that needs every byte: a Glance upload). */
export async function* withZeros(source: AsyncIterable<StorePiece>): AsyncGenerator<Uint8Array, void, undefined> {
  for await (const item of source) {
    if (!isHole(item)) {
      yield item;
      continue;
    }
    for (let left = item.hole; left > 0; left -= ZERO_PIECE_BYTES) {
      // One event-loop turn per piece, so hashing or sending the zeros never starves the loop.
      await new Promise<void>((resolve) => setImmediate(resolve));
      yield ZEROS.subarray(0, Math.min(left, ZERO_PIECE_BYTES));
    }
  }
}
