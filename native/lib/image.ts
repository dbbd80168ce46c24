// Image: an open RBD image (an rbd_image_t). I/O goes through librbd aio completions; admin calls run in
// worker threads. Errors name the C call and "pool/namespace/image@snap".
import { withProgress, type ProgressOptions } from './abort.js';
import type { NativeImage, NativeStat } from './binding.js';
import { checkName, checkUint, spec } from './checks.js';
import { BusyError, Errno, invalid } from './errors.js';
import { featureNames } from './features.js';
import type { Ioctx } from './ioctx.js';
import { INTERNAL, Lifecycle } from './lifecycle.js';
import type { ChildInfo, DiffIterateOptions, Extent, ImageStat, LockerInfo, ParentInfo, SnapInfo } from './types.js';

/** The addon's stat plus the feature names. */
export function withStat(stat: NativeStat): ImageStat {
  return { ...stat, featureNames: featureNames(stat.features) };
}

let construct: (ioctx: Ioctx, native: NativeImage, name: string, readOnly: boolean, snapshot: string | null) => Image;
let internals: (image: Image) => { native: NativeImage; life: Lifecycle; spec: string; setSnapshot: (name: string | null) => void };

/** For group.ts: the native handle and lifecycle its image calls run on (not exported from the package). */
export function imageInternals(image: Image): { native: NativeImage; life: Lifecycle; spec: string; setSnapshot: (name: string | null) => void } {
  return internals(image);
}

/** For Ioctx.openImage: the only way to make an Image (not exported from the package). */
export function newImage(ioctx: Ioctx, native: NativeImage, name: string, readOnly: boolean, snapshot: string | null): Image {
  return construct(ioctx, native, name, readOnly, snapshot);
}

/** An open RBD image (an `rbd_image_t`). */
export class Image {
  readonly #native: NativeImage;
  readonly #life = new Lifecycle();
  readonly #ioctx: Ioctx;
  readonly #name: string;
  readonly #readOnly: boolean;
  #snapshot: string | null;

  static {
    construct = (ioctx, native, name, readOnly, snapshot) => new Image(INTERNAL, ioctx, native, name, readOnly, snapshot);
    internals = (image) => ({
      native: image.#native,
      life: image.#life,
      spec: image.#spec(),
      setSnapshot: (name) => {
        image.#snapshot = name;
      },
    });
  }

  /** Use {@link Ioctx.openImage}. */
  private constructor(token: typeof INTERNAL, ioctx: Ioctx, native: NativeImage, name: string, readOnly: boolean, snapshot: string | null) {
    if (token !== INTERNAL) throw new TypeError('use Ioctx.openImage()');
    this.#ioctx = ioctx;
    this.#native = native;
    this.#name = name;
    this.#readOnly = readOnly;
    this.#snapshot = snapshot;
  }

  get name(): string {
    return this.#name;
  }
  get ioctx(): Ioctx {
    return this.#ioctx;
  }
  /** Opened with rbd_aio_open_read_only. */
  get readOnly(): boolean {
    return this.#readOnly;
  }
  /** The snapshot the handle reads from (openImage's `snapshot`, or the last snapSet), or null for the head. */
  get snapshot(): string | null {
    return this.#snapshot;
  }
  /** True once close() was called. */
  get closed(): boolean {
    return this.#life.closed;
  }

  #spec(snap: string | undefined = this.#snapshot ?? undefined): string {
    return spec(this.#ioctx.pool, this.#ioctx.namespace, this.#name, snap);
  }

  #run<T>(call: string, start: () => Promise<T>, snap?: string): Promise<T> {
    return this.#life.run(call, this.#spec(snap), start);
  }

  /** A call naming one snapshot: checks the name and names the snapshot in errors. */
  #snapCall<T>(call: string, name: string, start: () => Promise<T>): Promise<T> {
    const start2 = (): Promise<T> => {
      checkName(name, 'snapshot name', call, this.#spec(name));
      return start();
    };
    return this.#run(call, start2, typeof name === 'string' ? name : undefined);
  }

  /** Checks an (offset, length) range, then starts the call. */
  #rangeCall<T>(call: string, offset: number, length: number, start: () => Promise<T>): Promise<T> {
    return this.#run(call, () => {
      checkUint(offset, 'offset', call, this.#spec());
      checkUint(length, 'length', call, this.#spec());
      return start();
    });
  }

  /** Size in bytes. Implements rbd_get_size. */
  size(): Promise<number> {
    return this.#run('rbd_get_size', () => this.#native.size());
  }

  /** Implements rbd_stat, rbd_get_features and rbd_get_parent. */
  stat(): Promise<ImageStat> {
    return this.#run('rbd_stat', async () => withStat(await this.#native.stat()));
  }

  /** Feature bits. Implements rbd_get_features. */
  features(): Promise<bigint> {
    return this.#run('rbd_get_features', () => this.#native.features());
  }

  /** RBD_FLAG_* bits (e.g. object map invalid). Implements rbd_get_flags. */
  flags(): Promise<bigint> {
    return this.#run('rbd_get_flags', () => this.#native.flags());
  }

  /** The clone parent, or null. Implements rbd_get_parent. */
  parentInfo(): Promise<ParentInfo | null> {
    return this.#run('rbd_get_parent', () => this.#native.parentInfo());
  }

  /**
   * Allocated extents (parent included), or with `fromSnapshot` the extents changed since that snapshot.
   * Implements rbd_diff_iterate2 (include_parent = 1). Default: the whole image.
   */
  diffIterate(opts: DiffIterateOptions = {}): Promise<Extent[]> {
    const call = 'rbd_diff_iterate2';
    const { fromSnapshot, offset = 0, length, wholeObject = false } = opts;
    return this.#run(call, () => {
      if (fromSnapshot !== undefined && fromSnapshot !== null) checkName(fromSnapshot, 'fromSnapshot', call, this.#spec());
      checkUint(offset, 'offset', call, this.#spec());
      if (length !== undefined) checkUint(length, 'length', call, this.#spec());
      return this.#native.diffIterate(fromSnapshot ?? null, offset, length, Boolean(wholeObject));
    });
  }

  /**
   * The numbers of the image's data objects that exist in RADOS (object n holds bytes [n × objectSize,
   * (n + 1) × objectSize)), ascending, found by listing the image's data pool and keeping the names
   * `<block name prefix>.<n>`: one op per ~1000 objects of the pool, where rbd_diff_iterate2 without an
   * object map sends one op per object of the image. The list includes every object any snapshot of the
   * image holds data in (a head deleted after a snapshot stays listed while the snapshot's clone exists),
   * and may include objects the open snapshot does not have (reading them gives zeros). A parent's
   * objects are not included. Null, without listing, when the data pool holds more than `maxPoolObjects`
   * objects (or the listing passes that many), or when the image uses fancy striping.
   * Implements rados_ioctx_pool_stat and rados_nobjects_list on the image's data pool, in a worker thread.
   */
  dataObjects(opts: { maxPoolObjects: number }): Promise<number[] | null> {
    const call = 'rados_nobjects_list';
    return this.#run(call, () => {
      checkUint(opts.maxPoolObjects, 'maxPoolObjects', call, this.#spec());
      return this.#native.dataObjects(opts.maxPoolObjects);
    });
  }

  /**
   * Reads `length` bytes at `offset`, into `into` when given (which must hold `length` bytes). A read
   * reaching past the end returns a shorter buffer. Implements rbd_aio_read; the buffer stays referenced
   * until the completion fires.
   */
  read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    const call = 'rbd_aio_read';
    return this.#rangeCall(call, offset, length, async () => {
      if (into !== undefined && (!Buffer.isBuffer(into) || into.length < length)) {
        throw invalid(call, this.#spec(), 'into must be a Buffer of at least `length` bytes');
      }
      const buf = into ?? Buffer.allocUnsafe(length);
      const n = await this.#native.read(buf, offset, length);
      return n === buf.length ? buf : buf.subarray(0, n);
    });
  }

  /** Writes `data` at `offset`. Implements rbd_aio_write; `data` stays referenced until the completion fires. */
  write(offset: number, data: Buffer | Uint8Array): Promise<void> {
    const call = 'rbd_aio_write';
    return this.#run(call, () => {
      checkUint(offset, 'offset', call, this.#spec());
      if (!(data instanceof Uint8Array)) throw invalid(call, this.#spec(), 'data must be a Buffer or Uint8Array');
      const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      return this.#native.write(buf, offset);
    });
  }

  /** Implements rbd_aio_discard. */
  discard(offset: number, length: number): Promise<void> {
    return this.#rangeCall('rbd_aio_discard', offset, length, () => this.#native.discard(offset, length));
  }

  /** Implements rbd_aio_write_zeroes. */
  writeZeroes(offset: number, length: number): Promise<void> {
    return this.#rangeCall('rbd_aio_write_zeroes', offset, length, () => this.#native.writeZeroes(offset, length));
  }

  /** Implements rbd_aio_flush. */
  flush(): Promise<void> {
    return this.#run('rbd_aio_flush', () => this.#native.flush());
  }

  /** Implements rbd_resize_with_progress. */
  resize(size: number | bigint, opts?: ProgressOptions): Promise<void> {
    const call = 'rbd_resize_with_progress';
    return this.#run(call, () => {
      checkUint(size, 'size', call, this.#spec());
      return withProgress(opts, call, this.#spec(), (token) => this.#native.resize(size, token));
    });
  }

  /**
   * Copies the parent's data into this clone and detaches it. Implements rbd_flatten_with_progress in a
   * worker thread. Aborting `signal` makes the progress callback return -ECANCELED: the call rejects with
   * {@link CanceledError} and the image stays usable (partly flattened, still a clone).
   */
  flatten(opts?: ProgressOptions): Promise<void> {
    const call = 'rbd_flatten_with_progress';
    return this.#run(call, () => withProgress(opts, call, this.#spec(), (token) => this.#native.flatten(token)));
  }

  /** Implements rbd_snap_create. */
  snapCreate(name: string): Promise<void> {
    return this.#snapCall('rbd_snap_create', name, () => this.#native.snapCreate(name));
  }

  /**
   * Implements rbd_snap_remove2; `force` passes RBD_SNAP_REMOVE_FORCE (unprotect, flatten children).
   * With clone-v2 children the snapshot moves to the trash namespace.
   * @throws {BusyError} the snapshot is protected
   */
  snapRemove(name: string, opts: ProgressOptions & { force?: boolean | undefined } = {}): Promise<void> {
    const call = 'rbd_snap_remove2';
    return this.#snapCall(call, name, () =>
      withProgress(opts, call, this.#spec(name), (token) => this.#native.snapRemove(name, Boolean(opts.force), token)),
    );
  }

  /** Removes a snapshot by id, e.g. a trash-namespace one (clone v2). Implements rbd_snap_remove_by_id. */
  snapRemoveById(id: bigint | number): Promise<void> {
    const call = 'rbd_snap_remove_by_id';
    return this.#run(call, () => {
      checkUint(id, 'id', call, this.#spec());
      return this.#native.snapRemoveById(id);
    });
  }

  /**
   * All snapshots, trash namespace included. Implements rbd_snap_list, rbd_snap_get_namespace_type,
   * rbd_snap_get_trash_namespace and rbd_snap_get_timestamp.
   */
  snapList(): Promise<SnapInfo[]> {
    return this.#run('rbd_snap_list', async () => {
      const snaps = await this.#native.snapList();
      return snaps.map((s) => {
        const out: SnapInfo = { id: s.id, name: s.name, size: s.size, namespace: s.namespace };
        if (s.originalName !== undefined) out.originalName = s.originalName;
        if (s.timestamp !== undefined) out.timestamp = new Date(s.timestamp);
        return out;
      });
    });
  }

  /** Implements rbd_snap_protect. @throws {BusyError} already protected */
  snapProtect(name: string): Promise<void> {
    return this.#snapCall('rbd_snap_protect', name, () => this.#native.snapProtect(name));
  }

  /** Implements rbd_snap_unprotect. @throws {BusyError} clones still depend on it */
  snapUnprotect(name: string): Promise<void> {
    return this.#snapCall('rbd_snap_unprotect', name, () => this.#native.snapUnprotect(name));
  }

  /** Implements rbd_snap_is_protected. */
  snapIsProtected(name: string): Promise<boolean> {
    return this.#snapCall('rbd_snap_is_protected', name, () => this.#native.snapIsProtected(name));
  }

  /** Implements rbd_snap_exists. */
  snapExists(name: string): Promise<boolean> {
    return this.#snapCall('rbd_snap_exists', name, () => this.#native.snapExists(name));
  }

  /** Clones of the snapshot the image is opened at (or set with snapSet). Implements rbd_list_children3. */
  listChildren(): Promise<ChildInfo[]> {
    return this.#run('rbd_list_children3', () => this.#native.listChildren());
  }

  /** Switches the handle to a snapshot, or back to the head with null. Implements rbd_snap_set. */
  snapSet(name: string | null): Promise<void> {
    const call = 'rbd_snap_set';
    const start = async (): Promise<void> => {
      if (name !== null) checkName(name, 'snapshot name', call, this.#spec(name));
      await this.#native.snapSet(name);
      this.#snapshot = name;
    };
    return this.#run(call, start, name ?? undefined);
  }

  /** Implements rbd_metadata_get; null when the key is absent. */
  metadataGet(key: string): Promise<string | null> {
    return this.#keyCall('rbd_metadata_get', key, () => this.#native.metadataGet(key));
  }

  /** Implements rbd_metadata_set. */
  metadataSet(key: string, value: string): Promise<void> {
    const call = 'rbd_metadata_set';
    return this.#keyCall(call, key, () => {
      if (typeof value !== 'string') throw invalid(call, this.#spec(), 'value must be a string');
      return this.#native.metadataSet(key, value);
    });
  }

  /** Implements rbd_metadata_remove. @throws {NotFoundError} no such key */
  metadataRemove(key: string): Promise<void> {
    return this.#keyCall('rbd_metadata_remove', key, () => this.#native.metadataRemove(key));
  }

  /** All image metadata. Implements rbd_metadata_list. */
  metadataList(): Promise<Record<string, string>> {
    return this.#run('rbd_metadata_list', () => this.#native.metadataList());
  }

  /** A call naming a metadata key or lock cookie: checks it is a non-empty string first. */
  #keyCall<T>(call: string, key: string, start: () => Promise<T>, what = 'key'): Promise<T> {
    return this.#run(call, () => {
      checkName(key, what, call, this.#spec());
      return start();
    });
  }

  /**
   * Takes the advisory exclusive lock. Implements rbd_lock_exclusive. EBUSY (held by another client) and
   * EEXIST (already held with this cookie) both reject with BusyError. librbd's exclusive lock carries no
   * tag: `tag` is accepted for symmetry with shared locks and unused.
   * @throws {BusyError} held by another client (EBUSY) or already by this cookie (EEXIST)
   */
  lockAcquireExclusive(cookie: string, tag?: string): Promise<void> {
    const call = 'rbd_lock_exclusive';
    return this.#keyCall(
      call,
      cookie,
      async () => {
        if (tag !== undefined && typeof tag !== 'string') throw invalid(call, this.#spec(), 'tag must be a string');
        try {
          await this.#native.lockExclusive(cookie);
        } catch (err) {
          if (typeof err === 'object' && err !== null && 'errno' in err && err.errno === Errno.EEXIST) {
            const message = `${call} failed for ${this.#spec()}: lock already held with cookie ${JSON.stringify(cookie)} (EEXIST)`;
            throw new BusyError(message, { errno: Errno.EEXIST, call, object: this.#spec() });
          }
          throw err;
        }
      },
      'cookie',
    );
  }

  /** Releases an advisory lock this client holds. Implements rbd_unlock. @throws {NotFoundError} not held with this cookie */
  unlock(cookie: string): Promise<void> {
    return this.#keyCall('rbd_unlock', cookie, () => this.#native.unlock(cookie), 'cookie');
  }

  /** Holders of the advisory lock. Implements rbd_list_lockers. */
  listLockers(): Promise<LockerInfo[]> {
    return this.#run('rbd_list_lockers', () => this.#native.listLockers());
  }

  /** Breaks another client's advisory lock. Implements rbd_break_lock. */
  breakLock(client: string, cookie: string): Promise<void> {
    const call = 'rbd_break_lock';
    return this.#keyCall(
      call,
      client,
      () => {
        checkName(cookie, 'cookie', call, this.#spec());
        return this.#native.breakLock(client, cookie);
      },
      'client',
    );
  }

  /** Idempotent. Waits for in-flight I/O, then closes the image with rbd_aio_close. */
  close(): Promise<void> {
    return this.#life.close(() => this.#native.close());
  }
}
