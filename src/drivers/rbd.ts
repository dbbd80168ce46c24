// RbdStore: glance_store's rbd driver. An image is an RBD image named by the image id in the configured
// pool, with a protected snapshot `snap`; its location is `rbd://<fsid>/<pool>/<id>/snap`, so Nova and
// Cinder can clone it copy-on-write.
//
// Writing: the image is created with the object size of one chunk (`chunkSizeMiB`, default 8 MiB = order
// 23) and written in pieces of at most 2 MiB (never straddling an object), up to `writesInFlight` aio writes
// at once; with thin provisioning the all-zero parts are not written at all. The write size is capped
// because librbd copies every write (rbd_disable_zero_copy_writes defaults to true), so each byte in flight
// is held twice: 8 × 8 MiB writes cost ~130 MiB of RSS, 8 × 2 MiB ~35 MiB, at the same throughput; 4 × 2 MiB
// (the default) copies a 4 GiB disk across clusters as fast as 8 on the test bed, at ~30 MiB less peak RSS
// (bench/snapshot.ts). An unknown size starts at 0 and grows (doubling steps,
// as glance_store does) and is trimmed to the exact size at the end. Any failure, an abort included,
// removes the image (and its snapshot) again.
//
// Deleting: glance_store unprotects `snap`, removes it and removes the image, raising InUseByStore when
// unprotect fails with EBUSY — which only happens for clone v1 children: with clone v2 (cluster requires
// mimic clients) unprotect succeeds despite children and snap removal moves the snapshot to the trash, so
// glance_store ends up with the image left, `snap` gone and the location broken. snapstore gives both
// formats glance_store's v1 outcome: it lists the snapshot's clones first (rbd_list_children3, which fails
// with EPERM exactly when clones live in a pool the user cannot read) and raises StoreInUse, changing
// nothing, when there are any (trashed clones included). Likewise other snapshots on the image are
// refused before `snap` is touched, where glance_store would remove `snap` and then fail.
import { Readable } from 'node:stream';
import { CephCluster, type Image, type Ioctx } from '../ceph/index.js';
import { checkImageId, formatRbdLocation, parseRbdLocation } from '../location.js';
import {
  ForeignLocation,
  StoreClosed,
  StoreError,
  StoreInUse,
  StoreNotFound,
  mapRbdError,
  type AddOptions,
  type AddResult,
  type GetOptions,
  type Store,
  type StoreCapabilities,
  type StoreSource,
} from '../store.js';
import { BufferPool, abortedError, checkAddArguments, chunked, nonZeroRuns, resolveRange, withGuardedSource } from './common.js';
import { checksumFields, createImageHasher } from './hashing.js';

export interface RbdStoreConfig {
  /** ceph.conf path (`rbd_store_ceph_conf`). */
  confPath: string;
  /** cephx id without `client.` (`rbd_store_user`). */
  user: string;
  /** Pool new images go to (`rbd_store_pool`). */
  pool: string;
  /** Keyring path; by default the one ceph.conf names for `client.<user>`. */
  keyring?: string;
  /** `rbd_store_chunk_size` in MiB: write size and object size (rounded down to a power of two). Default 8. */
  chunkSizeMiB?: number;
  /** `rbd_thin_provisioning`: do not write zeros. Default true. */
  thinProvisioning?: boolean;
  /** `rados_connect_timeout`, in ms. Default 10 s. */
  connectTimeoutMs?: number;
  /** Share an existing connection (it must be as a user allowed to write the pool); not closed by close(). */
  cluster?: CephCluster;
  /** Aio writes (of at most 2 MiB) in flight at once (default 4). */
  writesInFlight?: number;
  /** Chunks read ahead of the consumer by `get` (default 4). */
  readAhead?: number;
}

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** glance_store's rbd snapshot name. */
export const RBD_SNAPSHOT = 'snap';
/** Below this, a zero run inside a chunk is written anyway (fewer, larger writes). */
const ZERO_SKIP_GRANULARITY = 64 * 1024;
/** Largest single aio write (see the header comment). */
const MAX_WRITE_SIZE = 2 * MiB;
/** Largest step an unknown-size image grows by (glance_store's cap). */
const MAX_GROW_STEP = 8 * GiB;

interface ResolvedLocation {
  pool: string;
  image: string;
  snapshot: string | null;
}

export class RbdStore implements Store {
  readonly kind = 'rbd';
  readonly schemes = ['rbd'] as const;
  readonly capabilities: StoreCapabilities;
  readonly pool: string;
  /** `chunkSizeMiB` in bytes (glance_store's chunk: the object size). */
  readonly chunkSize: number;
  /** Bytes per aio write: the chunk size, at most 2 MiB. */
  readonly writeSize: number;
  /** The object size order images are created with (log2 of the object size). */
  readonly order: number;
  private readonly config: RbdStoreConfig;
  private readonly writesInFlight: number;
  private readonly readAhead: number;
  private connection: Promise<CephCluster> | null = null;
  private closing: Promise<void> | null = null;

  constructor(config: RbdStoreConfig) {
    const chunkSizeMiB = config.chunkSizeMiB ?? 8;
    if (!(chunkSizeMiB > 0) || !Number.isFinite(chunkSizeMiB)) {
      throw new StoreError('CONFIG_INVALID', `rbd chunk size must be a positive number of MiB, not ${String(chunkSizeMiB)}`);
    }
    this.config = config;
    this.pool = config.pool;
    // glance_store: order = int(log2(chunk)); writes are one chunk each.
    this.order = Math.max(12, Math.floor(Math.log2(chunkSizeMiB * MiB)));
    this.chunkSize = Math.round(chunkSizeMiB * MiB);
    this.writeSize = Math.min(this.chunkSize, MAX_WRITE_SIZE, 2 ** this.order);
    this.writesInFlight = Math.max(1, config.writesInFlight ?? 4);
    this.readAhead = Math.max(1, config.readAhead ?? 4);
    this.capabilities = {
      readAccess: true,
      writeAccess: true,
      readRandom: true,
      canClone: true,
      thinProvisioning: config.thinProvisioning ?? true,
    };
  }

  /** A store connected now (so configuration mistakes surface here rather than at the first add). */
  static async connect(config: RbdStoreConfig): Promise<RbdStore> {
    const store = new RbdStore(config);
    await store.cluster();
    return store;
  }

  /** The connection this store uses (made on first use unless one was given). */
  async cluster(): Promise<CephCluster> {
    if (this.closing) throw new StoreClosed('the RbdStore is closed');
    if (this.config.cluster) return this.config.cluster;
    this.connection ??= CephCluster.connect({
      confPath: this.config.confPath,
      user: this.config.user,
      keyring: this.config.keyring,
      timeoutMs: this.config.connectTimeoutMs,
    }).catch((err: unknown) => {
      this.connection = null;
      throw mapRbdError(err, `connecting to Ceph as client.${this.config.user} (${this.config.confPath})`);
    });
    return this.connection;
  }

  /** The location an image id gets in this store. */
  async locationOf(imageId: string): Promise<string> {
    return formatRbdLocation((await this.cluster()).fsid, this.pool, checkImageId(imageId), RBD_SNAPSHOT);
  }

  private async ioctx(pool: string): Promise<Ioctx> {
    const cluster = await this.cluster();
    try {
      return await cluster.pool(pool);
    } catch (err) {
      throw mapRbdError(err, `opening pool ${pool}`, { pool });
    }
  }

  async add(imageId: string, data: StoreSource, size?: number, options: AddOptions = {}): Promise<AddResult> {
    return withGuardedSource(data, () => this.write(imageId, data, size, options));
  }

  private async write(imageId: string, data: StoreSource, size: number | undefined, options: AddOptions): Promise<AddResult> {
    checkAddArguments(imageId, size);
    const { signal } = options;
    const what = `storing image ${this.pool}/${imageId}`;
    const context = { pool: this.pool, image: imageId };
    if (signal?.aborted) throw abortedError(signal, what);
    const cluster = await this.cluster();
    const ioctx = await this.ioctx(this.pool);
    const location = formatRbdLocation(cluster.fsid, this.pool, imageId, RBD_SNAPSHOT);

    let imageSize = size ?? 0;
    try {
      await ioctx.createImage(imageId, imageSize, { order: this.order });
    } catch (err) {
      throw mapRbdError(err, `${what}: creating the image`, context);
    }

    let image: Image | null = null;
    const inFlight = new Set<Promise<void>>();
    const hasher = createImageHasher({ checksums: options.checksums, size });
    try {
      image = await ceph(what, context, () => ioctx.openImage(imageId));
      const img = image;
      const pool = new BufferPool(this.writeSize, this.writesInFlight + 1);
      let failure: unknown = null;
      let growStep = this.writeSize;
      let total = 0;
      const drain = async () => {
        while (inFlight.size > 0) await Promise.race(inFlight);
        if (failure) throw failure;
      };

      for await (const chunk of chunked(data, pool, hasher, { expectedSize: size, signal, what })) {
        if (failure) throw failure;
        total = chunk.offset + chunk.data.length;
        const runs = this.capabilities.thinProvisioning
          ? nonZeroRuns(chunk.data, chunk.offset, ZERO_SKIP_GRANULARITY)
          : [{ start: 0, end: chunk.data.length }];
        if (runs.length === 0) {
          pool.give(chunk.buffer);
          continue;
        }
        if (size === undefined && total > imageSize) {
          // Growing while writes are in flight is safe in librbd, but waiting keeps failures in order.
          await drain();
          growStep = Math.min(growStep * 2, MAX_GROW_STEP);
          imageSize = Math.max(total, imageSize + growStep);
          await ceph(what, context, () => img.resize(imageSize));
        }
        while (inFlight.size >= this.writesInFlight) await Promise.race(inFlight);
        if (failure) {
          pool.give(chunk.buffer);
          throw failure;
        }
        const task: Promise<void> = Promise.allSettled(
          runs.map((run) => img.write(chunk.offset + run.start, chunk.data.subarray(run.start, run.end))),
        ).then((results) => {
          // Every write of the chunk has completed: librbd no longer holds the buffer.
          pool.give(chunk.buffer);
          const rejected = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
          if (rejected && !failure) failure = mapRbdError(rejected.reason, `${what}: writing at ${chunk.offset}`, context);
          inFlight.delete(task);
        });
        inFlight.add(task);
      }
      await drain();
      const digests = await hasher.digest();
      if (size === undefined && imageSize !== total) await ceph(what, context, () => img.resize(total));
      await ceph(what, context, () => img.flush());
      await ceph(what, context, () => img.snapCreate(RBD_SNAPSHOT));
      await ceph(what, context, () => img.snapProtect(RBD_SNAPSHOT));
      image = null;
      await ceph(what, context, () => img.close());
      return { location, size: total, ...checksumFields(digests) };
    } catch (err) {
      // Writes already handed to librbd cannot be recalled: let them finish before closing and removing.
      await Promise.allSettled([...inFlight]);
      await image?.close().catch(() => {});
      await this.removeCreated(ioctx, imageId);
      throw err;
    } finally {
      await hasher.close();
    }
  }

  /** Best-effort removal of an image `add` created (and possibly snapshotted) before failing. */
  private async removeCreated(ioctx: Ioctx, name: string): Promise<void> {
    try {
      const image = await ioctx.openImage(name);
      try {
        if (await image.snapExists(RBD_SNAPSHOT)) {
          if (await image.snapIsProtected(RBD_SNAPSHOT)) await image.snapUnprotect(RBD_SNAPSHOT);
          await image.snapRemove(RBD_SNAPSHOT);
        }
      } finally {
        await image.close();
      }
      await ioctx.removeImage(name);
    } catch {
      // Reported through the original error; what remains is visible to `rbd ls` and gc.
    }
  }

  /** Parses a location this store can serve. @throws BadLocation, ForeignLocation. */
  private async resolve(location: string): Promise<ResolvedLocation> {
    const loc = parseRbdLocation(location);
    const cluster = await this.cluster();
    if (loc.fsid !== null && loc.fsid !== cluster.fsid) {
      throw new ForeignLocation(
        `location names cluster ${loc.fsid}, but this store is connected to cluster ${cluster.fsid}`,
        { context: { locationFsid: loc.fsid, clusterFsid: cluster.fsid } },
      );
    }
    return { pool: loc.pool ?? this.pool, image: loc.image, snapshot: loc.snapshot };
  }

  private async openForRead(loc: ResolvedLocation, what: string): Promise<Image> {
    const ioctx = await this.ioctx(loc.pool);
    const snapshot = loc.snapshot ?? undefined;
    return ceph(what, { pool: loc.pool, image: loc.image }, () => ioctx.openImage(loc.image, { readOnly: true, snapshot }));
  }

  async get(location: string, options?: GetOptions): Promise<Readable> {
    const loc = await this.resolve(location);
    const what = `reading ${describe(loc)}`;
    const image = await this.openForRead(loc, what);
    try {
      const size = await ceph(what, {}, () => image.size());
      const { start, end } = resolveRange(size, options);
      return new RbdReadStream(image, start, end, this.chunkSize, this.readAhead, what);
    } catch (err) {
      await image.close().catch(() => {});
      throw err;
    }
  }

  async getSize(location: string): Promise<number> {
    const loc = await this.resolve(location);
    const what = `sizing ${describe(loc)}`;
    const image = await this.openForRead(loc, what);
    try {
      return await ceph(what, {}, () => image.size());
    } finally {
      await image.close().catch(() => {});
    }
  }

  async delete(location: string): Promise<void> {
    const loc = await this.resolve(location);
    const what = `deleting ${describe(loc)}`;
    const context = { pool: loc.pool, image: loc.image };
    const ioctx = await this.ioctx(loc.pool);
    if (loc.snapshot !== null) {
      const snap = loc.snapshot;
      const image = await ceph(what, context, () => ioctx.openImage(loc.image));
      try {
        const snaps = await ceph(what, context, () => image.snapList());
        const others = snaps.filter((s) => s.namespace !== 'user' || s.name !== snap);
        if (others.length > 0) {
          const names = others.map((s) => (s.namespace === 'user' ? s.name : `${s.originalName ?? s.name} (${s.namespace})`));
          throw new StoreInUse(`${what}: the image has other snapshots: ${names.join(', ')}`, { context: { ...context, snapshots: names } });
        }
        if (snaps.length > 0) {
          await this.refuseIfCloned(ioctx, loc.image, snap, what);
          const isProtected = await ceph(what, context, () => image.snapIsProtected(snap));
          if (isProtected) {
            await ceph(`${what}: unprotecting @${snap}`, context, () => image.snapUnprotect(snap)).catch(inUseOnBusy(what));
          }
          await ceph(`${what}: removing @${snap}`, context, () => image.snapRemove(snap)).catch(inUseOnBusy(what));
        }
      } finally {
        await image.close().catch(() => {});
      }
    }
    await ceph(`${what}: removing the image`, context, () => ioctx.removeImage(loc.image)).catch((err: unknown) => {
      if (err instanceof StoreInUse) {
        throw new StoreInUse(`${what}: the image has other snapshots or is open elsewhere`, { cause: err, context });
      }
      throw err;
    });
  }

  /** StoreInUse when `image@snap` has clones (either format, trashed clones included). */
  private async refuseIfCloned(ioctx: Ioctx, name: string, snap: string, what: string): Promise<void> {
    const context = { pool: ioctx.pool, image: name, snapshot: snap };
    let children: Array<{ pool: string; image: string; trash: boolean }>;
    const atSnap = await ceph(what, context, () => ioctx.openImage(name, { readOnly: true, snapshot: snap }));
    try {
      children = await atSnap.listChildren();
    } catch (err) {
      // librbd lists no children without touching other pools, and fails with EPERM only when it found
      // clones in a pool this user cannot read (client.glance and nova's disks in `vms`): they exist.
      if ((err as { code?: unknown }).code === 'PERMISSION') {
        throw new StoreInUse(`${what}: snapshot @${snap} has clone(s) in a pool this user cannot read`, { cause: err, context });
      }
      throw mapRbdError(err, `${what}: listing clones of @${snap}`, context);
    } finally {
      await atSnap.close().catch(() => {});
    }
    if (children.length > 0) {
      const names = children.map((c) => `${c.pool}/${c.image}${c.trash ? ' (in trash)' : ''}`);
      throw new StoreInUse(`${what}: snapshot @${snap} has ${children.length} clone(s): ${names.join(', ')}`, {
        context: { ...context, children: names },
      });
    }
  }

  /** Closes the connection if this store made it. Safe to call twice. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const own = this.connection;
      this.connection = null;
      if (own) await (await own.catch(() => null))?.close();
    })();
    return this.closing;
  }
}

function describe(loc: ResolvedLocation): string {
  return `${loc.pool}/${loc.image}${loc.snapshot ? `@${loc.snapshot}` : ''}`;
}

/** Runs a Ceph call, turning its error into a StoreError. */
async function ceph<T>(what: string, context: Record<string, string>, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw mapRbdError(err, what, context);
  }
}

function inUseOnBusy(what: string): (err: unknown) => never {
  return (err) => {
    if (err instanceof StoreInUse) throw new StoreInUse(`${what}: the snapshot is in use by clones`, { cause: err });
    throw err;
  };
}

/**
 * An image (at a snapshot) as a byte stream: up to `readAhead` chunk reads in flight, none started while
 * the consumer is not reading (backpressure); the image is closed at the end, on error or on destroy.
 */
class RbdReadStream extends Readable {
  private next: number;
  private readonly queue: Array<Promise<Buffer>> = [];

  constructor(
    private readonly image: Image,
    start: number,
    private readonly end: number,
    private readonly chunkSize: number,
    private readonly readAhead: number,
    private readonly what: string,
  ) {
    super({ highWaterMark: chunkSize });
    this.next = start;
  }

  private fill(): void {
    while (this.queue.length < this.readAhead && this.next < this.end) {
      // Reads align to chunk (object) boundaries after the first.
      const length = Math.min(this.chunkSize - (this.next % this.chunkSize), this.end - this.next);
      const read = this.image.read(this.next, length);
      read.catch(() => {});
      this.queue.push(read);
      this.next += length;
    }
  }

  override _read(): void {
    this.fill();
    const head = this.queue.shift();
    if (!head) {
      this.push(null);
      return;
    }
    head.then(
      (buf) => {
        if (this.destroyed) return;
        this.push(buf);
      },
      (err: unknown) => this.destroy(err instanceof StoreNotFound ? err : mapRbdError(err, this.what)),
    );
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    Promise.allSettled(this.queue)
      .then(() => this.image.close())
      .then(
        () => callback(err),
        (closeErr: unknown) => callback(err ?? mapRbdError(closeErr, this.what)),
      );
  }
}
