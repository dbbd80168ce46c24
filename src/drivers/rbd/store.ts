// RbdStore: glance_store's rbd driver. An image is an RBD image named by the image id in the configured
// pool, with a protected snapshot `snap`; its location is `rbd://<fsid>/<pool>/<id>/snap`, so Nova and
// Cinder can clone it copy-on-write. Writing: write.ts; reading: read-stream.ts; pending marks and
// discard: pending.ts; the clone path's finalize: clones.ts; librbd errors → store errors: errors.ts.
//
// Deleting: glance_store unprotects `snap`, removes it and removes the image, raising InUseByStore when
// unprotect fails with EBUSY — which only happens for clone v1 children: with clone v2 (cluster requires
// mimic clients) unprotect succeeds despite children and snap removal moves the snapshot to the trash, so
// glance_store ends up with the image left, `snap` gone and the location broken. snapstore gives both
// formats glance_store's v1 outcome: it lists the snapshot's clones first (rbd_list_children3, which fails
// with EPERM exactly when clones live in a pool the user cannot read) and raises StoreInUse, changing
// nothing, when there are any (trashed clones included). Likewise other snapshots on the image are
// refused before `snap` is touched, where glance_store would remove `snap` and then fail.
import type { Readable } from 'node:stream';
import { CephCluster, isCephConnectionError, type Image, type Ioctx } from '../../ceph/index.js';
import { hasCode } from '../../errors.js';
import { checkImageId, formatRbdLocation, parseRbdLocation } from '../../location.js';
import {
  ForeignLocation,
  StoreClosed,
  StoreError,
  StoreInUse,
  type AddOptions,
  type AddResult,
  type CloneTarget,
  type IncrementalTarget,
  type GetOptions,
  type ListPendingOptions,
  type PendingEntry,
  type Store,
  type StoreCapabilities,
  type StoreSource,
} from '../../store.js';
import { abortedError, checkAddArguments, resolveRange, withGuardedSource } from '../common.js';
import { RbdCloneTarget } from './clones.js';
import { RbdIncrementalTarget } from './incremental.js';
import { ceph, mapRbdError, unlessMissing } from './errors.js';
import { RBD_SNAPSHOT } from './layout.js';
import { clearMark, discardImage, dropEntry, listMarks, markImage, readMark } from './pending.js';
import { RbdReadStream } from './read-stream.js';
import { writeImage, writesInFlightFor } from './write.js';

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
  /**
   * A connection (to the same cluster) allowed to read the disks' pool, used to open clones whose parent
   * lives there — librbd opens the parent with the clone, and Glance's user often cannot — for
   * readPending, listPending, markPending, clearPending, exists and discard. Default: the store's own
   * connection; a connection to another cluster is ignored. Not closed by close(). Without it, those calls
   * on such a clone (listPending: with such a clone in the pool) fail with PERMISSION rather than skip it.
   */
  parentReader?: CephCluster;
  /** Aio writes (of at most 2 MiB) in flight at once (default: the connection's rbd_concurrent_management_ops). */
  writesInFlight?: number;
  /** Chunks read ahead of the consumer by `get` (default 4). */
  readAhead?: number;
}

const MiB = 1024 * 1024;
/** Largest single aio write (see write.ts). */
const MAX_WRITE_SIZE = 2 * MiB;

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
  readonly clones: CloneTarget;
  readonly incremental: IncrementalTarget;
  private readonly config: RbdStoreConfig;
  private readonly writesInFlight: number | undefined;
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
    this.writesInFlight = config.writesInFlight === undefined ? undefined : Math.max(1, config.writesInFlight);
    this.readAhead = Math.max(1, config.readAhead ?? 4);
    this.capabilities = {
      readAccess: true,
      writeAccess: true,
      readRandom: true,
      canClone: true,
      thinProvisioning: config.thinProvisioning ?? true,
    };
    this.clones = new RbdCloneTarget(() => this.cluster(), this.pool);
    this.incremental = new RbdIncrementalTarget(() => this.ioctx(this.pool), this.clones);
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
      // CEPH_AUTH / CEPH_UNREACHABLE / CEPH_CONFIG already name the user, the files and the fix: kept as they are.
      throw isCephConnectionError(err) ? err : mapRbdError(err, `connecting to Ceph as client.${this.config.user} (${this.config.confPath})`);
    });
    return this.connection;
  }

  async locationOf(imageId: string): Promise<string> {
    return formatRbdLocation((await this.cluster()).fsid, this.pool, checkImageId(imageId), RBD_SNAPSHOT);
  }

  private async ioctx(pool: string, session?: CephCluster): Promise<Ioctx> {
    const cluster = session ?? (await this.cluster());
    return ceph(`opening pool ${pool}`, { pool }, () => cluster.pool(pool));
  }

  /** The store's pool, through the connection that can open clones of the disks (see `parentReader`). */
  private async markIoctx(): Promise<Ioctx> {
    const own = await this.cluster();
    const reader = this.config.parentReader;
    return this.ioctx(this.pool, reader && !reader.closed && reader.fsid === own.fsid ? reader : own);
  }

  async exists(imageId: string): Promise<boolean> {
    checkImageId(imageId);
    const io = await this.markIoctx();
    const what = `looking up ${this.pool}/${imageId}`;
    try {
      return await unlessMissing(what, { pool: this.pool, image: imageId }, false, async () => {
        await io.statImage(imageId);
        return true;
      });
    } catch (err) {
      // Opening a clone opens its parent too; a user who may not read the parent's pool still sees the name.
      if (!hasCode(err, 'PERMISSION')) throw err;
      return (await ceph(`listing pool ${this.pool}`, { pool: this.pool }, () => io.listImages())).includes(imageId);
    }
  }

  async add(imageId: string, data: StoreSource, size?: number, options: AddOptions = {}): Promise<AddResult> {
    return withGuardedSource(data, async () => {
      checkAddArguments(imageId, size);
      if (options.signal?.aborted) throw abortedError(options.signal, `storing image ${this.pool}/${imageId}`);
      const io = await this.ioctx(this.pool);
      const cluster = await this.cluster();
      const location = formatRbdLocation(cluster.fsid, this.pool, imageId, RBD_SNAPSHOT);
      const settings = {
        order: this.order,
        writeSize: this.writeSize,
        writesInFlight: this.writesInFlight ?? writesInFlightFor(cluster.confGet('rbd_concurrent_management_ops')),
        thinProvisioning: this.capabilities.thinProvisioning,
      };
      return writeImage(io, imageId, location, { data, size, options }, settings);
    });
  }

  async markPending(imageId: string, marker: string): Promise<void> {
    await markImage(await this.markIoctx(), checkImageId(imageId), marker);
  }

  async clearPending(imageId: string): Promise<void> {
    await clearMark(await this.markIoctx(), checkImageId(imageId));
  }

  async readPending(imageId: string): Promise<string | null> {
    return readMark(await this.markIoctx(), checkImageId(imageId));
  }

  /**
   * Reads the store's index of pending images and opens only those (see pending-index.ts). `scanAll` also
   * opens every image of the pool, for marks written by versions before the index (and indexes them).
   */
  async listPending(options: ListPendingOptions = {}): Promise<PendingEntry[]> {
    const fsid = (await this.cluster()).fsid;
    return listMarks(await this.markIoctx(), (name) => formatRbdLocation(fsid, this.pool, name, RBD_SNAPSHOT), options.scanAll);
  }

  async discard(imageId: string): Promise<boolean> {
    return discardImage(await this.markIoctx(), checkImageId(imageId));
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
    if (loc.snapshot !== null) await this.removeSnapshot(ioctx, loc.image, loc.snapshot, what);
    await ceph(`${what}: removing the image`, context, () => ioctx.removeImage(loc.image)).catch((err: unknown) => {
      if (err instanceof StoreInUse) {
        throw new StoreInUse(`${what}: the image has other snapshots or is open elsewhere`, { cause: err, context });
      }
      throw err;
    });
    // A marked image deleted (gc's way, or an operator's) leaves no entry in the pending index; one left by a
    // failure here only costs the next listing a check, so it does not fail the delete.
    await dropEntry(ioctx, loc.image).catch(() => {});
  }

  /** Removes the location's snapshot, refusing (changing nothing) when it has clones or others exist. */
  private async removeSnapshot(ioctx: Ioctx, name: string, snap: string, what: string): Promise<void> {
    const context = { pool: ioctx.pool, image: name };
    const image = await ceph(what, context, () => ioctx.openImage(name));
    try {
      const snaps = await ceph(what, context, () => image.snapList());
      const others = snaps.filter((s) => s.namespace !== 'user' || s.name !== snap);
      if (others.length > 0) {
        const names = others.map((s) => (s.namespace === 'user' ? s.name : `${s.originalName ?? s.name} (${s.namespace})`));
        throw new StoreInUse(`${what}: the image has other snapshots: ${names.join(', ')}`, { context: { ...context, snapshots: names } });
      }
      if (snaps.length === 0) return;
      await this.refuseIfCloned(ioctx, name, snap, what);
      const isProtected = await ceph(what, context, () => image.snapIsProtected(snap));
      if (isProtected) {
        await ceph(`${what}: unprotecting @${snap}`, context, () => image.snapUnprotect(snap)).catch(inUseOnBusy(what));
      }
      await ceph(`${what}: removing @${snap}`, context, () => image.snapRemove(snap)).catch(inUseOnBusy(what));
    } finally {
      await image.close().catch(() => {});
    }
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
      if (hasCode(err, 'PERMISSION')) {
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

function inUseOnBusy(what: string): (err: unknown) => never {
  return (err) => {
    if (err instanceof StoreInUse) throw new StoreInUse(`${what}: the snapshot is in use by clones`, { cause: err });
    throw err;
  };
}
