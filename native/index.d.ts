/**
 * ceph-rbd-napi — async bindings over librados and librbd.
 *
 * The object graph follows Ceph's own bindings: {@link Cluster} → {@link Ioctx} → {@link Image}.
 * Every method returns a Promise; no librados/librbd call runs on the JS thread. I/O goes through
 * librbd aio completions; admin calls run in worker threads. Each method's doc names the C
 * function(s) it implements.
 *
 * Importing this module does not load the addon. The first call that needs it loads it, and if it
 * cannot, rejects with {@link NativeUnavailableError} whose message says how to fix it.
 *
 * Sizes and offsets are JS numbers (images must stay below 2^53 bytes); where noted a bigint is
 * accepted as well.
 *
 * @packageDocumentation
 */

/** Loads the addon (and librbd/librados) if not loaded yet; true when that worked. Never throws. */
export function isAvailable(): boolean;

export interface ConnectOptions {
  /** Path of ceph.conf (mon host, and usually `keyring` per client section). */
  confPath: string;
  /** cephx id without the "client." prefix. Default "admin". */
  user?: string;
  /** Keyring path, set as the `keyring` option; otherwise ceph.conf decides. */
  keyring?: string;
  /**
   * Default 10000. Rounded up to whole seconds and set as client_mount_timeout,
   * rados_mon_op_timeout and rados_osd_op_timeout: connecting to monitors that do not answer
   * fails with {@link TimeoutError} after about this long, and so does any single RADOS op.
   */
  timeoutMs?: number;
  /**
   * Further Ceph options, set with rados_conf_set after ceph.conf is read (so they win over it), e.g.
   * `{ rbd_concurrent_management_ops: 4 }`. An unknown option fails the connect with NotFoundError
   * naming it (call `rados_conf_set <name>`).
   */
  config?: Record<string, string | number | boolean>;
}

/** A connection to one Ceph cluster (a `rados_t`). */
export class Cluster {
  private constructor();
  /**
   * Connects. Implements rados_create2 (cluster "ceph", name "client.<user>"),
   * rados_conf_read_file, rados_conf_set, rados_connect and rados_cluster_fsid.
   * @throws {TimeoutError} no monitor answered within timeoutMs
   * @throws {PermissionError} cephx rejected the key
   * @throws {NotFoundError} ceph.conf or the keyring does not exist
   * @throws {NativeUnavailableError} the addon or the Ceph libraries cannot be loaded
   */
  static connect(opts: ConnectOptions): Promise<Cluster>;
  /** The cluster fsid, read once at connect (rados_cluster_fsid). */
  readonly fsid: string;
  /** The cephx id connected as, without "client.". */
  readonly user: string;
  /** True once close() was called. */
  readonly closed: boolean;
  /** The value of a Ceph option as this connection uses it. Implements rados_conf_get. @throws {NotFoundError} no such option */
  confGet(key: string): string;
  /** Pool names. Implements rados_pool_list. */
  listPools(): Promise<string[]>;
  /**
   * Opens an I/O context on a pool, optionally in a RADOS namespace. Implements
   * rados_ioctx_create and rados_ioctx_set_namespace.
   * @throws {NotFoundError} no such pool
   */
  openIoctx(pool: string, namespace?: string): Promise<Ioctx>;
  /**
   * Idempotent. Waits for this cluster's in-flight calls, then releases the connection.
   * rados_shutdown runs only once every Ioctx and Image opened from it is closed too, so those
   * keep working after this resolves.
   */
  close(): Promise<void>;
}

export interface CreateImageOptions {
  /** Feature bits, or names such as 'layering', 'deep-flatten', 'exclusive-lock', 'object-map', 'fast-diff'. Default: the cluster's `rbd default features`. */
  features?: bigint | string[];
  /** Object size as a power of two (22 = 4 MiB). */
  order?: number;
  /** Separate data pool (erasure-coded pools). */
  dataPool?: string;
  stripeUnit?: bigint;
  stripeCount?: bigint;
}

export interface ProgressOptions {
  /** Called on the JS thread with librbd's progress, throttled to about every 50 ms and once with (total, total) on success. Exceptions it throws are ignored. */
  onProgress?: (done: number, total: number) => void;
  /** Aborting makes librbd's progress callback return -ECANCELED: the call rejects with {@link CanceledError}. */
  signal?: AbortSignal;
}

export interface CloneOptions {
  /** RBD_IMAGE_OPTION_CLONE_FORMAT: 1 needs a protected snapshot; 2 needs `require-min-compat-client mimic`. Default: librbd decides. */
  format?: 1 | 2;
  features?: bigint | string[];
  order?: number;
}

export interface TrashEntry {
  id: string;
  name: string;
  /** 'user' | 'mirroring' | 'migration' | 'removing' | 'user_parent' */
  source: string;
  deletionTime: Date;
  defermentEndTime: Date;
}

/** An I/O context: one pool (and namespace) of one cluster (a `rados_ioctx_t`). */
export class Ioctx {
  private constructor();
  readonly cluster: Cluster;
  readonly pool: string;
  /** RADOS namespace; '' for the default one. */
  readonly namespace: string;
  /** True once close() was called. */
  readonly closed: boolean;
  /**
   * Creates an image. Implements rbd_create4.
   * @throws {ExistsError} an image with that name exists
   */
  createImage(name: string, size: number | bigint, opts?: CreateImageOptions): Promise<void>;
  /**
   * Removes an image and its data. Implements rbd_remove_with_progress.
   * @throws {HasSnapshotsError} the image has snapshots
   * @throws {BusyError} the image is open (watched) elsewhere or has clones
   * @throws {NotFoundError} no such image
   */
  removeImage(name: string, opts?: ProgressOptions): Promise<void>;
  /** Renames an image within the pool. Implements rbd_rename. */
  renameImage(src: string, dst: string): Promise<void>;
  /** Image names. Implements rbd_list2. */
  listImages(): Promise<string[]>;
  /**
   * Size, layout, features and parent, without keeping the image open. Implements
   * rbd_open_read_only, rbd_stat, rbd_get_features, rbd_get_parent and rbd_close.
   */
  statImage(name: string): Promise<ImageStat>;
  /**
   * Clones `parentImage@parentSnap` of this pool into `dest/childName`. Implements rbd_clone3
   * (with RBD_IMAGE_OPTION_CLONE_FORMAT when `format` is given).
   * @throws {CrossClusterError} dest belongs to another Cluster connection
   * @throws {InvalidArgumentError} clone v1 from an unprotected snapshot
   */
  clone(parentImage: string, parentSnap: string, dest: Ioctx, childName: string, opts?: CloneOptions): Promise<void>;
  /** Moves an image to the pool's trash, removable after `delaySeconds` (default 0). Implements rbd_trash_move. */
  trashMove(name: string, delaySeconds?: number): Promise<void>;
  /** Images in the pool's trash. Implements rbd_trash_list. */
  trashList(): Promise<TrashEntry[]>;
  /** Deletes an image from the trash (`force` ignores the deferment time). Implements rbd_trash_remove_with_progress. */
  trashRemove(id: string, opts?: ProgressOptions & { force?: boolean }): Promise<void>;
  /** Restores an image from the trash as `name`. Implements rbd_trash_restore. */
  trashRestore(id: string, name: string): Promise<void>;
  /**
   * Opens an image. Implements rbd_aio_open, or rbd_aio_open_read_only with `readOnly` (no
   * header watch: needs only read caps; writes reject with {@link ReadOnlyError}). With
   * `snapshot` the image is opened at that snapshot (read-only data).
   * @throws {NotFoundError} no such image or snapshot
   */
  openImage(name: string, opts?: { readOnly?: boolean; snapshot?: string }): Promise<Image>;
  /**
   * Idempotent. Waits for this ioctx's in-flight calls, then releases it; rados_ioctx_destroy
   * runs once every Image opened through it is closed too.
   */
  close(): Promise<void>;
}

export interface ImageStat {
  size: number;
  objectSize: number;
  numObjects: number;
  order: number;
  features: bigint;
  /** `features` as names, e.g. ['layering', 'deep-flatten']. */
  featureNames: string[];
  parent: ParentInfo | null;
}

export interface ParentInfo {
  pool: string;
  namespace: string;
  image: string;
  imageId: string;
  snapshot: string;
  snapId: bigint;
  /** The parent image is in the trash. */
  trash: boolean;
}

export interface SnapInfo {
  id: bigint;
  /** For trash-namespace snapshots librbd's generated name; see originalName. */
  name: string;
  size: number;
  /** 'trash': removed while clone-v2 children still use it. */
  namespace: 'user' | 'group' | 'trash' | 'mirror' | 'unknown';
  /** For trash-namespace snapshots: the name the snapshot had. */
  originalName?: string;
  timestamp?: Date;
}

export interface Extent {
  offset: number;
  length: number;
  /** false: known to be zeros (a hole / discarded). */
  exists: boolean;
}

export interface ChildInfo {
  pool: string;
  namespace: string;
  image: string;
  imageId: string;
  trash: boolean;
}

export interface LockerInfo {
  /** e.g. "client.4123" */
  client: string;
  cookie: string;
  address: string;
  exclusive: boolean;
}

/** An open RBD image (an `rbd_image_t`). */
export class Image {
  private constructor();
  readonly name: string;
  readonly ioctx: Ioctx;
  /** Opened with rbd_aio_open_read_only. */
  readonly readOnly: boolean;
  /** The snapshot the handle reads from (openImage's `snapshot`, or the last snapSet), or null for the head. */
  readonly snapshot: string | null;
  /** True once close() was called. */
  readonly closed: boolean;

  /** Size in bytes. Implements rbd_get_size. */
  size(): Promise<number>;
  /** Implements rbd_stat, rbd_get_features and rbd_get_parent. */
  stat(): Promise<ImageStat>;
  /** Feature bits. Implements rbd_get_features. */
  features(): Promise<bigint>;
  /** RBD_FLAG_* bits (e.g. object map invalid). Implements rbd_get_flags. */
  flags(): Promise<bigint>;
  /** The clone parent, or null. Implements rbd_get_parent. */
  parentInfo(): Promise<ParentInfo | null>;
  /**
   * Allocated extents (parent included), or with `fromSnapshot` the extents changed since that
   * snapshot. Implements rbd_diff_iterate2 (include_parent = 1). Default: the whole image.
   */
  diffIterate(opts?: { fromSnapshot?: string; offset?: number; length?: number; wholeObject?: boolean }): Promise<Extent[]>;
  /**
   * Reads `length` bytes at `offset`, into `into` when given (which must hold `length` bytes).
   * A read reaching past the end returns a shorter buffer. Implements rbd_aio_read; the buffer
   * stays referenced until the completion fires.
   */
  read(offset: number, length: number, into?: Buffer): Promise<Buffer>;
  /** Implements rbd_aio_write; `data` stays referenced until the completion fires. */
  write(offset: number, data: Buffer | Uint8Array): Promise<void>;
  /** Implements rbd_aio_discard. */
  discard(offset: number, length: number): Promise<void>;
  /** Implements rbd_aio_write_zeroes. */
  writeZeroes(offset: number, length: number): Promise<void>;
  /** Implements rbd_aio_flush. */
  flush(): Promise<void>;
  /** Implements rbd_resize_with_progress. */
  resize(size: number | bigint, opts?: ProgressOptions): Promise<void>;
  /**
   * Copies the parent's data into this clone and detaches it. Implements
   * rbd_flatten_with_progress in a worker thread. Aborting `signal` rejects with
   * {@link CanceledError}; the image stays usable (partly flattened, still a clone).
   */
  flatten(opts?: ProgressOptions): Promise<void>;
  /** Implements rbd_snap_create. */
  snapCreate(name: string): Promise<void>;
  /**
   * Implements rbd_snap_remove2; `force` passes RBD_SNAP_REMOVE_FORCE (unprotect, flatten
   * children). With clone-v2 children the snapshot moves to the trash namespace.
   * @throws {BusyError} the snapshot is protected
   */
  snapRemove(name: string, opts?: ProgressOptions & { force?: boolean }): Promise<void>;
  /** Removes a snapshot by id, e.g. a trash-namespace one. Implements rbd_snap_remove_by_id. */
  snapRemoveById(id: bigint): Promise<void>;
  /**
   * All snapshots, trash namespace included. Implements rbd_snap_list,
   * rbd_snap_get_namespace_type, rbd_snap_get_trash_namespace and rbd_snap_get_timestamp.
   */
  snapList(): Promise<SnapInfo[]>;
  /** Implements rbd_snap_protect. @throws {BusyError} already protected */
  snapProtect(name: string): Promise<void>;
  /** Implements rbd_snap_unprotect. @throws {BusyError} clones still depend on it */
  snapUnprotect(name: string): Promise<void>;
  /** Implements rbd_snap_is_protected. */
  snapIsProtected(name: string): Promise<boolean>;
  /** Implements rbd_snap_exists. */
  snapExists(name: string): Promise<boolean>;
  /** Clones of the snapshot the image is opened at (or set with snapSet). Implements rbd_list_children3. */
  listChildren(): Promise<ChildInfo[]>;
  /** Switches the handle to a snapshot, or back to the head with null. Implements rbd_snap_set. */
  snapSet(name: string | null): Promise<void>;
  /** Implements rbd_metadata_get; null when the key is absent. */
  metadataGet(key: string): Promise<string | null>;
  /** Implements rbd_metadata_set. */
  metadataSet(key: string, value: string): Promise<void>;
  /** Implements rbd_metadata_remove. @throws {NotFoundError} no such key */
  metadataRemove(key: string): Promise<void>;
  /** Implements rbd_metadata_list. */
  metadataList(): Promise<Record<string, string>>;
  /**
   * Takes the advisory exclusive lock. Implements rbd_lock_exclusive.
   * librbd's exclusive lock has no tag; `tag` is accepted for symmetry and unused.
   * @throws {BusyError} held by another client (EBUSY) or already by this cookie (EEXIST)
   */
  lockAcquireExclusive(cookie: string, tag?: string): Promise<void>;
  /** Implements rbd_unlock. @throws {NotFoundError} not held with this cookie */
  unlock(cookie: string): Promise<void>;
  /** Implements rbd_list_lockers. */
  listLockers(): Promise<LockerInfo[]>;
  /** Implements rbd_break_lock. */
  breakLock(client: string, cookie: string): Promise<void>;
  /** Idempotent. Waits for in-flight calls, then closes with rbd_aio_close. */
  close(): Promise<void>;
}

/** librbd feature bits by name (include/rbd/features.h). */
export const FEATURES: Readonly<Record<string, bigint>>;
/** Feature bits → names. */
export function featureNames(bits: bigint): string[];
/**
 * malloc_trim(0) in a pool thread: gives the free memory of every malloc arena back to the kernel, so a
 * long-running process does not keep the high-water mark of each librados thread's arena. Resolves false
 * when nothing was released or the C library is not glibc.
 */
export function trimMemory(): Promise<boolean>;
/** Feature names (or bits) → bits. @throws {InvalidArgumentError} an unknown name */
export function featureBits(features: bigint | string[], call: string, object?: string): bigint;

// ---- errors ----

export interface RbdErrorDetails {
  errno?: number;
  call?: string;
  object?: string;
  cause?: unknown;
}

/** Base of every error this package throws. */
export class RbdError extends Error {
  constructor(message: string, details?: RbdErrorDetails);
  static readonly code: string;
  /** Stable code, e.g. 'NOT_FOUND'. */
  readonly code: string;
  /** Positive errno from librados/librbd (EBADF for ClosedError). */
  readonly errno: number;
  /** The C function that failed, e.g. "rbd_open", or would have been called. */
  readonly call: string;
  /** The pool/image@snapshot it concerned. */
  readonly object: string | undefined;
}
/** ENOENT: image, pool, snapshot, key or lock not found. */
export class NotFoundError extends RbdError {}
/** EEXIST */
export class ExistsError extends RbdError {}
/** EBUSY: open elsewhere, protected, locked, or has dependent clones. */
export class BusyError extends RbdError {}
/** ENOTEMPTY: the image has snapshots. */
export class HasSnapshotsError extends RbdError {}
/** EPERM / EACCES */
export class PermissionError extends RbdError {}
/** EROFS */
export class ReadOnlyError extends RbdError {}
/** ENOSPC / EDQUOT */
export class NoSpaceError extends RbdError {}
/** ETIMEDOUT */
export class TimeoutError extends RbdError {}
/** ECANCELED: an AbortSignal aborted the operation. */
export class CanceledError extends RbdError {}
/** EINVAL, and argument checks made in JS. */
export class InvalidArgumentError extends RbdError {}
/** EOPNOTSUPP / ENOSYS */
export class NotSupportedError extends RbdError {}
/** ENOTCONN / ESHUTDOWN, and EIO while connecting. */
export class ConnectionError extends RbdError {}
/** EXDEV: objects of two different Cluster connections in one call (clone). */
export class CrossClusterError extends RbdError {}
/** A call on a closed Cluster, Ioctx or Image (errno EBADF). Raised in JS; never reaches C. */
export class ClosedError extends RbdError {}
/** The addon or librbd/librados cannot be loaded; the message says what is missing and how to fix it. */
export class NativeUnavailableError extends RbdError {}

export { NotFoundError as ImageNotFoundError, ExistsError as ImageExistsError, BusyError as ImageBusyError, HasSnapshotsError as ImageHasSnapshotsError };

/** The one errno → error class table: the error for a librados/librbd return code. */
export function errorFromErrno(errno: number, call: string, object?: string): RbdError;
