// RbdStore's `add`: the image is created with the object size of one chunk (`chunkSizeMiB`, default 8 MiB =
// order 23) and written in pieces of at most 2 MiB (never straddling an object), up to `writesInFlight` aio
// writes at once; with thin provisioning the all-zero parts are not written at all. The write size is
// capped because librbd copies every write (rbd_disable_zero_copy_writes defaults to true), so each byte in
// flight is held twice: 8 × 8 MiB writes cost ~130 MiB of RSS, 8 × 2 MiB ~35 MiB, at the same throughput.
// By default as many writes are in flight as the connection's rbd_concurrent_management_ops (librbd's 10,
// what `rbd import` keeps in flight), so the store takes what the cluster can absorb (writesInFlightFor). A sparse source's holes are skipped with thin provisioning (the image is
// new, so they are unallocated already) and written as zeros without. An unknown size starts at 0 and grows (doubling steps, as glance_store
// does) and is trimmed to the exact size at the end. Any failure, an abort included, removes the image (and
// its snapshot, and its pending mark with it) again; when that fails too, the error says so (withCleanupFailure).
import type { Image, Ioctx } from '../../ceph/index.js';
import type { ErrorContext } from '../../errors.js';
import { StoreError, type AddOptions, type AddResult, type StoreSource } from '../../store.js';
import { BufferPool, chunked, isHoleRun, nonZeroRuns, type Chunk, type HoleRun } from '../common.js';
import { checksumFields, createImageHasher, type ImageHasher } from '../hashing.js';
import { ceph, mapRbdError } from './errors.js';
import { RBD_SNAPSHOT } from './layout.js';
import { setMark } from './pending.js';
import { indexDrop, indexGet, indexPut } from './pending-index.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** Below this, a zero run inside a chunk is written anyway (fewer, larger writes). */
const ZERO_SKIP_GRANULARITY = 64 * 1024;
/** Largest step an unknown-size image grows by (glance_store's cap). */
const MAX_GROW_STEP = 8 * GiB;

export interface WriteSettings {
  /** Object size order images are created with. */
  order: number;
  /** Bytes per aio write. */
  writeSize: number;
  writesInFlight: number;
  thinProvisioning: boolean;
}

/**
 * Writes in flight when the store's config does not say: the connection's `rbd_concurrent_management_ops`
 * (as `rbd import` does), at most 32; librbd's default 10 when the value is unusable.
 */
export function writesInFlightFor(concurrentOps: string): number {
  const ops = Number(concurrentOps);
  return Number.isSafeInteger(ops) && ops > 0 ? Math.min(ops, 32) : 10;
}

/** Creates `imageId` in `io`, writes `data` into it and snapshots it; `location` is what add returns. */
export async function writeImage(
  io: Ioctx,
  imageId: string,
  location: string,
  input: { data: StoreSource; size: number | undefined; options: AddOptions },
  settings: WriteSettings,
): Promise<AddResult> {
  const { data, size, options } = input;
  const what = `storing image ${io.pool}/${imageId}`;
  const context = { pool: io.pool, image: imageId };
  const marker = options.pending;
  // The index entry, carrying the mark, comes before the image: a kill between librbd's create and the
  // metadata write below leaves an image the index names with its mark (pending-index.ts).
  const indexed = marker === undefined ? null : await indexPut(io, imageId, marker);
  try {
    await ceph(`${what}: creating the image`, context, () => io.createImage(imageId, size ?? 0, { order: settings.order }));
  } catch (err) {
    // An image that already exists is someone else's and must not be removed; nor may our entry name it.
    if (indexed !== null) await indexDrop(io, imageId, indexed).catch(() => {});
    throw err;
  }
  let image: Image | null = null;
  let writer: ChunkWriter | null = null;
  const hasher = createImageHasher({ checksums: options.checksums, size });
  try {
    const img = await ceph(what, context, () => io.openImage(imageId));
    image = img;
    // Marked before any byte is written, so a kill from here on leaves a marked image for gc to find.
    if (marker !== undefined) await setMark(img, marker, true);
    writer = new ChunkWriter(img, settings, what, context);
    const total = await writer.writeAll(data, size, hasher, options.signal);
    const digests = await hasher.digest();
    await ceph(what, context, () => img.flush());
    await ceph(what, context, () => img.snapCreate(RBD_SNAPSHOT));
    await ceph(what, context, () => img.snapProtect(RBD_SNAPSHOT));
    image = null;
    await ceph(what, context, () => img.close());
    return { location, size: total, ...checksumFields(digests) };
  } catch (err) {
    // Writes already handed to librbd cannot be recalled: let them finish before closing and removing.
    await writer?.settle();
    await image?.close().catch(() => {});
    const left = await removeCreated(io, imageId);
    throw left === null ? err : withCleanupFailure(err, left, marker !== undefined, what, context);
  } finally {
    await hasher.close();
  }
}

/**
 * Removes an image `add` created (and possibly snapshotted) before failing, then its index entry; returns
 * why that failed (null: removed). The mark goes with the image, so a failure leaves it marked for gc.
 */
async function removeCreated(io: Ioctx, name: string): Promise<unknown> {
  try {
    const image = await io.openImage(name);
    try {
      if (await image.snapExists(RBD_SNAPSHOT)) {
        if (await image.snapIsProtected(RBD_SNAPSHOT)) await image.snapUnprotect(RBD_SNAPSHOT);
        await image.snapRemove(RBD_SNAPSHOT);
      }
    } finally {
      await image.close();
    }
    await io.removeImage(name);
  } catch (err) {
    return err;
  }
  const entry = await indexGet(io, name).catch(() => null);
  // A stale entry left here is harmless: listPending drops it once it sees the image gone.
  if (entry !== null) await indexDrop(io, name, entry).catch(() => {});
  return null;
}

/**
 * The error `add` failed with, saying also that removing the partial image failed (context
 * `cleanupFailed`, `imageLeft`): the caller's error keeps its class and code, and an operator learns
 * that an image stays, and whether gc will find it (it does when it was marked pending).
 */
function withCleanupFailure(err: unknown, cleanup: unknown, marked: boolean, what: string, context: ErrorContext): StoreError {
  const original = err instanceof StoreError ? err : mapRbdError(err, what, context);
  const left = `${context.pool}/${context.image}`;
  Object.assign(original.context, {
    cleanupFailed: cleanup instanceof Error ? cleanup.message : String(cleanup),
    imageLeft: marked ? `${left} (marked pending: gc removes it)` : `${left} (not marked: remove it with \`rbd rm\`)`,
  });
  return original;
}

/** Feeds chunks of the input to aio writes, at most `writesInFlight` chunks at once, growing the image as needed. */
class ChunkWriter {
  private readonly inFlight = new Set<Promise<void>>();
  private readonly pool: BufferPool;
  private failure: unknown = null;
  private imageSize = 0;
  private growStep: number;

  constructor(
    private readonly image: Image,
    private readonly settings: WriteSettings,
    private readonly what: string,
    private readonly context: ErrorContext,
  ) {
    this.pool = new BufferPool(settings.writeSize, settings.writesInFlight + 1);
    this.growStep = settings.writeSize;
  }

  /** Writes the whole input; returns its length. The image ends exactly that long. */
  async writeAll(data: StoreSource, size: number | undefined, hasher: ImageHasher, signal: AbortSignal | undefined): Promise<number> {
    this.imageSize = size ?? 0;
    let total = 0;
    for await (const chunk of chunked(data, this.pool, hasher, { expectedSize: size, signal, what: this.what })) {
      this.check();
      if (isHoleRun(chunk)) {
        total = chunk.offset + chunk.hole;
        if (!this.settings.thinProvisioning) await this.writeZeros(chunk, size === undefined ? total : undefined);
        continue;
      }
      total = chunk.offset + chunk.data.length;
      const runs = this.settings.thinProvisioning
        ? nonZeroRuns(chunk.data, chunk.offset, ZERO_SKIP_GRANULARITY)
        : [{ start: 0, end: chunk.data.length }];
      if (runs.length === 0) {
        this.pool.give(chunk.buffer);
        continue;
      }
      if (size === undefined && total > this.imageSize) await this.grow(total);
      await this.submit(chunk, runs);
    }
    await this.drain();
    if (size === undefined && this.imageSize !== total) await ceph(this.what, this.context, () => this.image.resize(total));
    return total;
  }

  /** A hole on a thick image: zeros written from one shared buffer, `writesInFlight` at a time. */
  private async writeZeros(hole: HoleRun, growTo: number | undefined): Promise<void> {
    if (growTo !== undefined && growTo > this.imageSize) await this.grow(growTo);
    const end = hole.offset + hole.hole;
    for (let at = hole.offset; at < end; ) {
      // Pieces end on writeSize boundaries, as chunks do: no write straddles an object.
      const length = Math.min(end - at, this.settings.writeSize - (at % this.settings.writeSize));
      const buffer = this.pool.take();
      buffer.fill(0, 0, length);
      await this.submit({ offset: at, data: buffer.subarray(0, length), buffer }, [{ start: 0, end: length }]);
      at += length;
    }
  }

  /** Waits for every write handed to librbd, whatever their outcome. */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
  }

  private check(): void {
    if (this.failure) throw this.failure;
  }

  private async drain(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.race(this.inFlight);
    this.check();
  }

  private async grow(atLeast: number): Promise<void> {
    // Growing while writes are in flight is safe in librbd, but waiting keeps failures in order.
    await this.drain();
    this.growStep = Math.min(this.growStep * 2, MAX_GROW_STEP);
    this.imageSize = Math.max(atLeast, this.imageSize + this.growStep);
    const newSize = this.imageSize;
    await ceph(this.what, this.context, () => this.image.resize(newSize));
  }

  private async submit(chunk: Chunk, runs: Array<{ start: number; end: number }>): Promise<void> {
    while (this.inFlight.size >= this.settings.writesInFlight) await Promise.race(this.inFlight);
    if (this.failure) {
      this.pool.give(chunk.buffer);
      throw this.failure;
    }
    const task: Promise<void> = Promise.allSettled(
      runs.map((run) => this.image.write(chunk.offset + run.start, chunk.data.subarray(run.start, run.end))),
    ).then((results) => {
      // Every write of the chunk has completed: librbd no longer holds the buffer.
      this.pool.give(chunk.buffer);
      const rejected = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (rejected && !this.failure) this.failure = mapRbdError(rejected.reason, `${this.what}: writing at ${chunk.offset}`, this.context);
      this.inFlight.delete(task);
    });
    this.inFlight.add(task);
  }
}
