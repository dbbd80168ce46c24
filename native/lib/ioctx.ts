// Ioctx: one pool (and namespace) of one cluster (a rados_ioctx_t): image management, clone, trash, open.
import { withProgress, type ProgressOptions } from './abort.js';
import type { NativeCloneOptions, NativeCreateOptions, NativeIoctx } from './binding.js';
import { checkName, checkUint, spec } from './checks.js';
import type { Cluster } from './cluster.js';
import { Errno, errorFromErrno, invalid } from './errors.js';
import { featureBits } from './features.js';
import { newImage, withStat, type Image } from './image.js';
import { INTERNAL, Lifecycle } from './lifecycle.js';
import type { CloneOptions, CreateImageOptions, ImageStat, OpenImageOptions, TrashEntry } from './types.js';

let construct: (cluster: Cluster, native: NativeIoctx, pool: string, namespace: string) => Ioctx;
let internals: (io: Ioctx) => { native: NativeIoctx; life: Lifecycle };

/** For rados.ts: the native handle and lifecycle its object calls run on (not exported from the package). */
export function ioctxInternals(io: Ioctx): { native: NativeIoctx; life: Lifecycle } {
  return internals(io);
}

/** For Cluster.openIoctx: the only way to make an Ioctx (not exported from the package). */
export function newIoctx(cluster: Cluster, native: NativeIoctx, pool: string, namespace: string): Ioctx {
  return construct(cluster, native, pool, namespace);
}

/** An I/O context: one pool (and namespace) of one cluster (a `rados_ioctx_t`). */
export class Ioctx {
  readonly #native: NativeIoctx;
  readonly #life = new Lifecycle();
  readonly #cluster: Cluster;
  readonly #pool: string;
  readonly #namespace: string;

  static {
    construct = (cluster, native, pool, namespace) => new Ioctx(INTERNAL, cluster, native, pool, namespace);
    internals = (io) => ({ native: io.#native, life: io.#life });
  }

  /** Use {@link Cluster.openIoctx}. */
  private constructor(token: typeof INTERNAL, cluster: Cluster, native: NativeIoctx, pool: string, namespace: string) {
    if (token !== INTERNAL) throw new TypeError('use Cluster.openIoctx()');
    this.#cluster = cluster;
    this.#native = native;
    this.#pool = pool;
    this.#namespace = namespace;
  }

  get cluster(): Cluster {
    return this.#cluster;
  }
  get pool(): string {
    return this.#pool;
  }
  /** RADOS namespace; '' for the default one. */
  get namespace(): string {
    return this.#namespace;
  }
  /** True once close() was called. */
  get closed(): boolean {
    return this.#life.closed;
  }

  #spec(image?: string, snap?: string): string {
    return spec(this.#pool, this.#namespace, image, snap);
  }

  /**
   * Creates an image. Implements rbd_create4.
   * @throws {ExistsError} an image with that name exists
   */
  createImage(name: string, size: number | bigint, opts: CreateImageOptions = {}): Promise<void> {
    const call = 'rbd_create4';
    const object = this.#spec(name);
    return this.#life.run(call, object, () => {
      checkName(name, 'name', call, object);
      checkUint(size, 'size', call, object);
      const native: NativeCreateOptions = { order: opts.order, dataPool: opts.dataPool, stripeUnit: opts.stripeUnit, stripeCount: opts.stripeCount };
      if (opts.features !== undefined) native.features = featureBits(opts.features, call, object);
      return this.#native.createImage(name, size, native);
    });
  }

  /**
   * Removes an image and its data. Implements rbd_remove_with_progress.
   * @throws {HasSnapshotsError} the image has snapshots
   * @throws {BusyError} the image is open (watched) elsewhere or has clones
   * @throws {NotFoundError} no such image
   */
  removeImage(name: string, opts?: ProgressOptions): Promise<void> {
    const call = 'rbd_remove_with_progress';
    const object = this.#spec(name);
    return this.#life.run(call, object, () => {
      checkName(name, 'name', call, object);
      return withProgress(opts, call, object, (token) => this.#native.removeImage(name, token));
    });
  }

  /** Renames an image within the pool. Implements rbd_rename. */
  renameImage(src: string, dst: string): Promise<void> {
    const call = 'rbd_rename';
    const object = this.#spec(src);
    return this.#life.run(call, object, () => {
      checkName(src, 'source name', call, object);
      checkName(dst, 'destination name', call, object);
      return this.#native.renameImage(src, dst);
    });
  }

  /** Image names in the pool/namespace. Implements rbd_list2. */
  listImages(): Promise<string[]> {
    return this.#life.run('rbd_list2', this.#spec(), () => this.#native.listImages());
  }

  /**
   * Size, layout, features and parent, without keeping the image open. Implements rbd_open_read_only,
   * rbd_stat, rbd_get_features, rbd_get_parent and rbd_close (in one worker).
   */
  statImage(name: string): Promise<ImageStat> {
    const call = 'rbd_open_read_only';
    const object = this.#spec(name);
    return this.#life.run(call, object, async () => {
      checkName(name, 'name', call, object);
      return withStat(await this.#native.statImage(name));
    });
  }

  /**
   * Clones `parentImage@parentSnap` of this pool into `dest/childName`. Implements rbd_clone3 (with
   * RBD_IMAGE_OPTION_CLONE_FORMAT when `format` is given: 1 needs a protected snapshot, 2 needs
   * `require-min-compat-client mimic`). The call counts as in flight on `dest` too.
   * @throws {CrossClusterError} dest belongs to another Cluster connection
   * @throws {InvalidArgumentError} clone v1 from an unprotected snapshot
   */
  clone(parentImage: string, parentSnap: string, dest: Ioctx, childName: string, opts: CloneOptions = {}): Promise<void> {
    const call = 'rbd_clone3';
    const object = this.#spec(parentImage, parentSnap);
    if (!(dest instanceof Ioctx)) return Promise.reject(invalid(call, object, 'dest must be an Ioctx'));
    const start = (): Promise<void> => {
      checkName(parentImage, 'parent image', call, object);
      checkName(parentSnap, 'parent snapshot', call, object);
      checkName(childName, 'child name', call, object);
      if (dest.cluster !== this.#cluster) throw errorFromErrno(Errno.EXDEV, call, `${object} -> ${spec(dest.pool, dest.namespace, childName)}`);
      if (opts.format !== undefined && opts.format !== 1 && opts.format !== 2) throw invalid(call, object, 'format must be 1 or 2');
      const native: NativeCloneOptions = { order: opts.order, format: opts.format };
      if (opts.features !== undefined) native.features = featureBits(opts.features, call, object);
      return this.#native.clone(parentImage, parentSnap, dest.#native, childName, native);
    };
    return this.#life.run(call, object, start, dest === this ? [] : [dest.#life]);
  }

  /** Moves an image to the pool's trash, removable after `delaySeconds` (default 0). Implements rbd_trash_move. */
  trashMove(name: string, delaySeconds: number = 0): Promise<void> {
    const call = 'rbd_trash_move';
    const object = this.#spec(name);
    return this.#life.run(call, object, () => {
      checkName(name, 'name', call, object);
      checkUint(delaySeconds, 'delaySeconds', call, object);
      return this.#native.trashMove(name, delaySeconds);
    });
  }

  /** Images in the pool's trash. Implements rbd_trash_list. */
  trashList(): Promise<TrashEntry[]> {
    return this.#life.run('rbd_trash_list', this.#spec(), async () => {
      const entries = await this.#native.trashList();
      return entries.map((e) => ({
        id: e.id,
        name: e.name,
        source: e.source,
        deletionTime: new Date(e.deletionTime),
        defermentEndTime: new Date(e.defermentEndTime),
      }));
    });
  }

  /** Deletes an image from the trash (`force` ignores the deferment time). Implements rbd_trash_remove_with_progress. */
  trashRemove(id: string, opts: ProgressOptions & { force?: boolean | undefined } = {}): Promise<void> {
    const call = 'rbd_trash_remove_with_progress';
    const object = this.#spec(`trash:${id}`);
    return this.#life.run(call, object, () => {
      checkName(id, 'id', call, object);
      return withProgress(opts, call, object, (token) => this.#native.trashRemove(id, Boolean(opts.force), token));
    });
  }

  /** Restores an image from the trash as `name`. Implements rbd_trash_restore. */
  trashRestore(id: string, name: string): Promise<void> {
    const call = 'rbd_trash_restore';
    const object = this.#spec(name);
    return this.#life.run(call, object, () => {
      checkName(id, 'id', call, object);
      checkName(name, 'name', call, object);
      return this.#native.trashRestore(id, name);
    });
  }

  /**
   * Opens an image. Implements rbd_aio_open, or rbd_aio_open_read_only with `readOnly` (no header watch:
   * needs only read caps; writes reject with {@link ReadOnlyError}). With `snapshot` the image is opened
   * at that snapshot (read-only data). The open is an aio completion: no thread waits for it.
   * @throws {NotFoundError} no such image or snapshot
   */
  openImage(name: string, opts: OpenImageOptions = {}): Promise<Image> {
    const readOnly = Boolean(opts.readOnly);
    const snapshot = opts.snapshot ?? null;
    const call = readOnly ? 'rbd_aio_open_read_only' : 'rbd_aio_open';
    const object = this.#spec(name, snapshot ?? undefined);
    return this.#life.run(call, object, async () => {
      checkName(name, 'name', call, object);
      if (snapshot !== null) checkName(snapshot, 'snapshot', call, object);
      const native = await this.#native.openImage(name, readOnly, snapshot ?? undefined);
      return newImage(this, native, name, readOnly, snapshot);
    });
  }

  /**
   * Opens an image by its id (`ParentInfo.imageId`, `TrashEntry.id`): the only way to open an image in
   * the RBD trash, e.g. a disk moved there while clones still use its snapshots. Implements
   * rbd_aio_open_by_id, or rbd_aio_open_by_id_read_only with `readOnly`.
   * @throws {NotFoundError} no image with that id (or no such snapshot)
   */
  openImageById(id: string, opts: OpenImageOptions = {}): Promise<Image> {
    const readOnly = Boolean(opts.readOnly);
    const snapshot = opts.snapshot ?? null;
    const call = readOnly ? 'rbd_aio_open_by_id_read_only' : 'rbd_aio_open_by_id';
    const object = this.#spec(id, snapshot ?? undefined);
    return this.#life.run(call, object, async () => {
      checkName(id, 'id', call, object);
      if (snapshot !== null) checkName(snapshot, 'snapshot', call, object);
      const native = await this.#native.openImage(id, readOnly, snapshot ?? undefined, true);
      return newImage(this, native, id, readOnly, snapshot);
    });
  }

  /**
   * Idempotent. Waits for this ioctx's in-flight calls, then drops its reference; rados_ioctx_destroy
   * runs once every Image opened through it is closed too.
   */
  close(): Promise<void> {
    return this.#life.close(() => this.#native.close());
  }
}
