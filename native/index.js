// ceph-rbd-napi: the JS face of the addon. The C++ side (src/) is glue only: it makes the
// librados/librbd calls off the JS thread and reports raw errnos. This file holds the class
// structure, the guards (closed handles, argument checks), AbortSignal handling, in-flight
// tracking for close(), and the one errno -> error class table.
//
// Importing this module never loads the addon; the first call that needs it does.

import { createRequire } from 'node:module';
import { constants as osConstants } from 'node:os';
import { getSystemErrorMap } from 'node:util';

const E = osConstants.errno;
/** Missing from os.constants (Linux values). */
const ESHUTDOWN = E.ESHUTDOWN ?? 108;
const ELIBACC = 79;
const EDQUOT = E.EDQUOT ?? 122;

// ---------------------------------------------------------------------------------------------
// Errors

/** Base class of every error this package throws. */
export class RbdError extends Error {
  static code = 'RBD_ERROR';
  static description = 'failed';

  /**
   * @param {string} message
   * @param {{ errno?: number, call?: string, object?: string, cause?: unknown }} [details]
   */
  constructor(message, details = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = new.target.name;
    /** Stable machine-readable code. */
    this.code = new.target.code;
    /** Positive errno returned by librados/librbd (or implied by the JS-side guard). */
    this.errno = details.errno ?? 0;
    /** The C function that failed (or would have been called). */
    this.call = details.call ?? '';
    /** The pool/image/snapshot the call concerned. */
    this.object = details.object;
  }
}

export class NotFoundError extends RbdError {
  static code = 'NOT_FOUND';
  static description = 'not found';
}
export class ExistsError extends RbdError {
  static code = 'EXISTS';
  static description = 'already exists';
}
export class BusyError extends RbdError {
  static code = 'BUSY';
  static description = 'busy (open elsewhere, locked, or has dependent clones)';
}
export class HasSnapshotsError extends RbdError {
  static code = 'HAS_SNAPSHOTS';
  static description = 'image has snapshots';
}
export class PermissionError extends RbdError {
  static code = 'PERMISSION';
  static description = 'permission denied';
}
export class ReadOnlyError extends RbdError {
  static code = 'READ_ONLY';
  static description = 'read-only';
}
export class NoSpaceError extends RbdError {
  static code = 'NO_SPACE';
  static description = 'no space left or quota exceeded';
}
export class TimeoutError extends RbdError {
  static code = 'TIMEOUT';
  static description = 'timed out';
}
export class CanceledError extends RbdError {
  static code = 'CANCELED';
  static description = 'canceled';
}
export class InvalidArgumentError extends RbdError {
  static code = 'INVALID_ARGUMENT';
  static description = 'invalid argument';
}
export class NotSupportedError extends RbdError {
  static code = 'NOT_SUPPORTED';
  static description = 'not supported';
}
export class ConnectionError extends RbdError {
  static code = 'CONNECTION';
  static description = 'no connection to the cluster';
}
export class CrossClusterError extends RbdError {
  static code = 'CROSS_CLUSTER';
  static description = 'the objects belong to different cluster connections';
}
/** A call on a Cluster, Ioctx or Image after close(). Raised in JS; never reaches C. */
export class ClosedError extends RbdError {
  static code = 'CLOSED';
  static description = 'handle is closed';
}
/** The addon (or librbd/librados) cannot be loaded. The message says how to fix it. */
export class NativeUnavailableError extends RbdError {
  static code = 'NATIVE_UNAVAILABLE';
}

/** Aliases named after the python binding's classes. */
export {
  NotFoundError as ImageNotFoundError,
  ExistsError as ImageExistsError,
  BusyError as ImageBusyError,
  HasSnapshotsError as ImageHasSnapshotsError,
};

/** The one errno -> error class table. */
const ERRNO_CLASSES = new Map([
  [E.ENOENT, NotFoundError],
  [E.EEXIST, ExistsError],
  [E.EBUSY, BusyError],
  [E.ENOTEMPTY, HasSnapshotsError],
  [E.EPERM, PermissionError],
  [E.EACCES, PermissionError],
  [E.EROFS, ReadOnlyError],
  [E.ENOSPC, NoSpaceError],
  [EDQUOT, NoSpaceError],
  [E.ETIMEDOUT, TimeoutError],
  [E.ECANCELED, CanceledError],
  [E.EINVAL, InvalidArgumentError],
  [E.EOPNOTSUPP, NotSupportedError],
  [E.ENOSYS, NotSupportedError],
  [E.EXDEV, CrossClusterError],
  [E.ENOTCONN, ConnectionError],
  [ESHUTDOWN, ConnectionError],
  [E.EBADF, ClosedError],
]);

/** C functions that establish the connection: an EIO from them is a connection failure. */
const CONNECT_CALLS = new Set(['rados_connect', 'rados_cluster_fsid']);

function errnoName(errno) {
  const entry = getSystemErrorMap().get(-errno);
  return entry ? entry[0] : `errno ${errno}`;
}

/**
 * Builds the error for a negative librados/librbd return code.
 * @param {number} errno positive (a negative value is accepted and negated)
 * @param {string} call the C function name, e.g. "rbd_open"
 * @param {string} [object] the pool/image/snapshot it concerned
 * @returns {RbdError}
 */
export function errorFromErrno(errno, call, object) {
  const n = Math.abs(errno);
  let Cls = ERRNO_CLASSES.get(n) ?? RbdError;
  if (n === E.EIO && CONNECT_CALLS.has(call)) Cls = ConnectionError;
  const name = errnoName(n);
  const description = Cls === RbdError ? (getSystemErrorMap().get(-n)?.[1] ?? 'failed') : Cls.description;
  const message = `${call} failed${object ? ` for ${object}` : ''}: ${description} (${name})`;
  return new Cls(message, { errno: n, call, object });
}

/** A rejection from the addon carries errno/call/object; map it through the table. */
function translate(err) {
  if (err instanceof RbdError) return err;
  if (err && typeof err.errno === 'number' && typeof err.call === 'string') {
    return errorFromErrno(err.errno, err.call, err.object);
  }
  return err;
}

// ---------------------------------------------------------------------------------------------
// Lazy loading

const require = createRequire(import.meta.url);
const ADDON_PATH = './build/Release/ceph_rbd.node';
let binding;
let loadFailure;

function explainLoadFailure(err) {
  const msg = String(err?.message ?? err);
  const lib = /(lib(?:rbd|rados)\.so[.\d]*): cannot open shared object file/.exec(msg);
  let text;
  if (lib) {
    text = `${lib[1]} not found: apt-get install librbd1 librados2 (the Ceph client libraries)`;
  } else if (err?.code === 'MODULE_NOT_FOUND' || /Cannot find module/.test(msg)) {
    text =
      'ceph-rbd-napi addon not built: npm run build --workspace ceph-rbd-napi ' +
      '(needs librbd-dev librados-dev, g++, make, python3)';
  } else if (/undefined symbol|version `[^']+' not found/.test(msg)) {
    text = `ceph-rbd-napi addon does not match the installed librbd/librados (${msg}): rebuild it with npm run build --workspace ceph-rbd-napi`;
  } else {
    text = `ceph-rbd-napi addon failed to load: ${msg}`;
  }
  return new NativeUnavailableError(text, { errno: ELIBACC, call: 'dlopen', object: ADDON_PATH, cause: err });
}

function load() {
  if (binding) return binding;
  if (loadFailure) throw loadFailure;
  try {
    binding = require(ADDON_PATH);
  } catch (err) {
    loadFailure = explainLoadFailure(err);
    throw loadFailure;
  }
  return binding;
}

/** Tries to load the addon (and with it librbd/librados). Never throws. */
export function isAvailable() {
  try {
    load();
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

const INTERNAL = Symbol('ceph-rbd-napi internal');

/** librbd feature bits (include/rbd/features.h). */
export const FEATURES = Object.freeze({
  layering: 1n << 0n,
  striping: 1n << 1n,
  'exclusive-lock': 1n << 2n,
  'object-map': 1n << 3n,
  'fast-diff': 1n << 4n,
  'deep-flatten': 1n << 5n,
  journaling: 1n << 6n,
  'data-pool': 1n << 7n,
  operations: 1n << 8n,
  migrating: 1n << 9n,
  'non-primary': 1n << 10n,
  'dirty-cache': 1n << 11n,
});

/** Feature bits -> names, lowest bit first. Unknown bits are reported as "bit<N>". */
/**
 * Gives the free memory of glibc's malloc arenas back to the kernel (malloc_trim(0), in a pool thread).
 * librados' threads each allocate from an arena of their own and keep what a flatten or a copy frees, so a
 * long-running process's RSS creeps up from run to run; call this when a big operation is done. Resolves
 * true when memory was released, false when there was none to release or the C library is not glibc.
 */
export async function trimMemory() {
  return load().trimMemory();
}

export function featureNames(bits) {
  const out = [];
  for (let i = 0n; i < 64n; i++) {
    const bit = 1n << i;
    if ((bits & bit) === 0n) continue;
    const name = Object.keys(FEATURES).find((k) => FEATURES[k] === bit);
    out.push(name ?? `bit${i}`);
  }
  return out;
}

/** Names (or bits) -> feature bits. */
export function featureBits(features, call, object) {
  if (typeof features === 'bigint') return features;
  if (!Array.isArray(features)) throw errorFromErrno(E.EINVAL, call, object);
  let bits = 0n;
  for (const name of features) {
    const bit = FEATURES[name];
    if (bit === undefined) {
      const err = errorFromErrno(E.EINVAL, call, object);
      err.message = `${call} failed for ${object}: unknown feature ${JSON.stringify(name)} (known: ${Object.keys(FEATURES).join(', ')})`;
      throw err;
    }
    bits |= bit;
  }
  return bits;
}

function invalid(call, object, what) {
  const err = errorFromErrno(E.EINVAL, call, object);
  err.message = `${call} failed${object ? ` for ${object}` : ''}: ${what}`;
  return err;
}

function checkName(value, what, call, object) {
  if (typeof value !== 'string' || value.length === 0) throw invalid(call, object, `${what} must be a non-empty string`);
}

function checkUint(value, what, call, object) {
  if (typeof value === 'bigint' ? value >= 0n : Number.isSafeInteger(value) && value >= 0) return;
  throw invalid(call, object, `${what} must be a non-negative integer`);
}

function spec(pool, namespace, image, snap) {
  let s = pool;
  if (namespace) s += `/${namespace}`;
  if (image) s += `/${image}`;
  if (snap) s += `@${snap}`;
  return s;
}

function withStat(stat) {
  return { ...stat, featureNames: featureNames(stat.features) };
}

/**
 * Calls in flight on one handle, so that close() can wait for them, and the closed guard.
 * Every method funnels through run(): a closed handle rejects with ClosedError (EBADF) before
 * anything reaches C; a native rejection is mapped through errorFromErrno.
 */
class Lifecycle {
  #inflight = new Set();
  #closing = null;

  get closed() {
    return this.#closing !== null;
  }

  /** @param {() => Promise<any>} start @param {Lifecycle[]} [also] other handles the call uses */
  async run(call, object, start, also = []) {
    if (this.closed) throw errorFromErrno(E.EBADF, call, object);
    for (const other of also) if (other.closed) throw errorFromErrno(E.EBADF, call, object);
    let promise;
    try {
      promise = start();
    } catch (err) {
      throw translate(err);
    }
    const owners = [this, ...also];
    for (const o of owners) o.#inflight.add(promise);
    try {
      return await promise;
    } catch (err) {
      throw translate(err);
    } finally {
      for (const o of owners) o.#inflight.delete(promise);
    }
  }

  /** Idempotent: the first call marks the handle closed, waits for in-flight calls, then runs finish. */
  close(finish) {
    if (this.#closing === null) {
      const inflight = [...this.#inflight];
      this.#closing = Promise.allSettled(inflight).then(async () => {
        try {
          await finish();
        } catch (err) {
          throw translate(err);
        }
      });
    }
    return this.#closing;
  }
}

/** Wires ProgressOptions to the addon: a guarded listener and a CancelToken fed by the signal. */
function progressArgs(opts, call, object) {
  const { onProgress, signal } = opts ?? {};
  if (signal?.aborted) throw errorFromErrno(E.ECANCELED, call, object);
  let listener;
  if (typeof onProgress === 'function') {
    listener = (done, total) => {
      try {
        onProgress(done, total);
      } catch {
        // A failing listener must not abort the Ceph operation; use the signal for that.
      }
    };
  }
  let token;
  let detach = () => {};
  if (signal) {
    token = new (load().CancelToken)();
    const abort = () => token.cancel();
    signal.addEventListener('abort', abort, { once: true });
    detach = () => signal.removeEventListener('abort', abort);
  }
  return { listener, token, detach };
}

async function withProgress(opts, call, object, start) {
  const { listener, token, detach } = progressArgs(opts, call, object);
  try {
    return await start(listener, token);
  } finally {
    detach();
  }
}

// ---------------------------------------------------------------------------------------------
// Cluster

export class Cluster {
  #native;
  #life = new Lifecycle();
  #fsid;
  #user;

  /** @internal Use Cluster.connect(). */
  constructor(token, native, user) {
    if (token !== INTERNAL) throw new TypeError('use Cluster.connect()');
    this.#native = native;
    this.#fsid = native.fsid();
    this.#user = user;
  }

  /**
   * Connects to a cluster. Implements rados_create2 (cluster "ceph", name "client.<user>"),
   * rados_conf_read_file, rados_conf_set (keyring, client_mount_timeout, rados_mon_op_timeout,
   * rados_osd_op_timeout), rados_connect and rados_cluster_fsid, in a worker thread.
   */
  static async connect(opts) {
    const call = 'rados_connect';
    if (!opts || typeof opts !== 'object') throw invalid(call, undefined, 'options are required');
    const { confPath, keyring } = opts;
    const user = String(opts.user ?? 'admin').replace(/^client\./, '');
    const timeoutMs = opts.timeoutMs ?? 10000;
    checkName(confPath, 'confPath', 'rados_conf_read_file', undefined);
    checkName(user, 'user', call, undefined);
    if (keyring !== undefined) checkName(keyring, 'keyring', 'rados_conf_set', `client.${user}`);
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw invalid(call, `client.${user}`, 'timeoutMs must be positive');
    // Ceph takes these timeouts in whole seconds.
    const seconds = Math.max(1, Math.ceil(timeoutMs / 1000));
    const options = [];
    if (opts.config !== undefined) {
      if (!opts.config || typeof opts.config !== 'object') throw invalid('rados_conf_set', `client.${user}`, 'config must be an object of option names to values');
      for (const [key, value] of Object.entries(opts.config)) {
        if (!/^[A-Za-z0-9_ -]+$/.test(key)) throw invalid('rados_conf_set', `client.${user}`, `config option name ${JSON.stringify(key)} is not an option name`);
        if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
          throw invalid('rados_conf_set', `client.${user}`, `config option ${key} must be a string, number or boolean`);
        }
        options.push([key, String(value)]);
      }
    }
    const b = load();
    try {
      const native = await b.NativeCluster.connect(confPath, user, keyring, seconds, options);
      return new Cluster(INTERNAL, native, user);
    } catch (err) {
      throw translate(err);
    }
  }

  /** Cluster fsid, read once at connect (rados_cluster_fsid). */
  get fsid() {
    return this.#fsid;
  }
  /** cephx id without "client.". */
  get user() {
    return this.#user;
  }
  get closed() {
    return this.#life.closed;
  }

  /**
   * The value of a Ceph option as this connection uses it (ceph.conf, then what connect set). Implements
   * rados_conf_get. @throws {NotFoundError} no such option
   */
  confGet(key) {
    checkName(key, 'key', 'rados_conf_get', undefined);
    if (this.#life.closed) throw errorFromErrno(E.EBADF, 'rados_conf_get', `cluster ${this.#fsid}`);
    try {
      return this.#native.confGet(key);
    } catch (err) {
      throw translate(err);
    }
  }

  /** Pool names. Implements rados_pool_list. */
  listPools() {
    return this.#life.run('rados_pool_list', `cluster ${this.#fsid}`, () => this.#native.listPools());
  }

  /** Opens an I/O context on a pool (and namespace). Implements rados_ioctx_create + rados_ioctx_set_namespace. */
  openIoctx(pool, namespace = '') {
    const call = 'rados_ioctx_create';
    return this.#life.run(call, spec(pool, namespace), async () => {
      checkName(pool, 'pool', call, String(pool));
      if (typeof namespace !== 'string') throw invalid(call, pool, 'namespace must be a string');
      const native = await this.#native.openIoctx(pool, namespace);
      return new Ioctx(INTERNAL, this, native, pool, namespace);
    });
  }

  /**
   * Idempotent. Waits for this cluster's in-flight calls, then drops the connection's
   * reference. rados_shutdown runs (in a worker) once every Ioctx and Image opened from this
   * cluster is closed too.
   */
  close() {
    return this.#life.close(() => this.#native.close());
  }
}

// ---------------------------------------------------------------------------------------------
// Ioctx

export class Ioctx {
  #native;
  #life = new Lifecycle();
  #cluster;
  #pool;
  #namespace;

  /** @internal Use Cluster.openIoctx(). */
  constructor(token, cluster, native, pool, namespace) {
    if (token !== INTERNAL) throw new TypeError('use Cluster.openIoctx()');
    this.#cluster = cluster;
    this.#native = native;
    this.#pool = pool;
    this.#namespace = namespace;
  }

  get cluster() {
    return this.#cluster;
  }
  get pool() {
    return this.#pool;
  }
  get namespace() {
    return this.#namespace;
  }
  get closed() {
    return this.#life.closed;
  }

  #spec(image, snap) {
    return spec(this.#pool, this.#namespace, image, snap);
  }

  /** @internal for clone: the lifecycle and native object of the destination. */
  static _internals(ioctx) {
    return { life: ioctx.#life, native: ioctx.#native };
  }

  /** Creates an image. Implements rbd_create4. */
  createImage(name, size, opts = {}) {
    const call = 'rbd_create4';
    const object = this.#spec(name);
    return this.#life.run(call, object, () => {
      checkName(name, 'name', call, object);
      checkUint(size, 'size', call, object);
      const native = { order: opts.order, dataPool: opts.dataPool, stripeUnit: opts.stripeUnit, stripeCount: opts.stripeCount };
      if (opts.features !== undefined) native.features = featureBits(opts.features, call, object);
      return this.#native.createImage(name, size, native);
    });
  }

  /** Removes an image. Implements rbd_remove_with_progress. */
  removeImage(name, opts) {
    const call = 'rbd_remove_with_progress';
    const object = this.#spec(name);
    return this.#life.run(call, object, () => {
      checkName(name, 'name', call, object);
      return withProgress(opts, call, object, (listener, token) => this.#native.removeImage(name, listener, token));
    });
  }

  /** Renames an image within the pool. Implements rbd_rename. */
  renameImage(src, dst) {
    const call = 'rbd_rename';
    const object = this.#spec(src);
    return this.#life.run(call, object, () => {
      checkName(src, 'source name', call, object);
      checkName(dst, 'destination name', call, object);
      return this.#native.renameImage(src, dst);
    });
  }

  /** Image names in the pool/namespace. Implements rbd_list2. */
  listImages() {
    return this.#life.run('rbd_list2', this.#spec(), () => this.#native.listImages());
  }

  /**
   * Size, layout, features and parent of an image without keeping it open. Implements
   * rbd_open_read_only, rbd_stat, rbd_get_features, rbd_get_parent, rbd_close (one worker).
   */
  statImage(name) {
    const call = 'rbd_open_read_only';
    const object = this.#spec(name);
    return this.#life.run(call, object, async () => {
      checkName(name, 'name', call, object);
      return withStat(await this.#native.statImage(name));
    });
  }

  /**
   * Clones parentImage@parentSnap (in this ioctx) into dest/childName. Implements rbd_clone3;
   * `format` sets RBD_IMAGE_OPTION_CLONE_FORMAT (1 needs a protected snapshot, 2 needs
   * min compat client mimic).
   */
  clone(parentImage, parentSnap, dest, childName, opts = {}) {
    const call = 'rbd_clone3';
    const object = this.#spec(parentImage, parentSnap);
    if (!(dest instanceof Ioctx)) return Promise.reject(invalid(call, object, 'dest must be an Ioctx'));
    const d = Ioctx._internals(dest);
    return this.#life.run(
      call,
      object,
      () => {
        checkName(parentImage, 'parent image', call, object);
        checkName(parentSnap, 'parent snapshot', call, object);
        checkName(childName, 'child name', call, object);
        if (dest.cluster !== this.#cluster) throw errorFromErrno(E.EXDEV, call, `${object} -> ${spec(dest.pool, dest.namespace, childName)}`);
        if (opts.format !== undefined && opts.format !== 1 && opts.format !== 2) throw invalid(call, object, 'format must be 1 or 2');
        const native = { order: opts.order, format: opts.format };
        if (opts.features !== undefined) native.features = featureBits(opts.features, call, object);
        return this.#native.clone(parentImage, parentSnap, d.native, childName, native);
      },
      dest === this ? [] : [d.life],
    );
  }

  /** Moves an image to the pool's trash. Implements rbd_trash_move. */
  trashMove(name, delaySeconds = 0) {
    const call = 'rbd_trash_move';
    const object = this.#spec(name);
    return this.#life.run(call, object, () => {
      checkName(name, 'name', call, object);
      checkUint(delaySeconds, 'delaySeconds', call, object);
      return this.#native.trashMove(name, delaySeconds);
    });
  }

  /** Images in the pool's trash. Implements rbd_trash_list. */
  trashList() {
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

  /** Deletes an image from the trash. Implements rbd_trash_remove_with_progress. */
  trashRemove(id, opts = {}) {
    const call = 'rbd_trash_remove_with_progress';
    const object = this.#spec(`trash:${id}`);
    return this.#life.run(call, object, () => {
      checkName(id, 'id', call, object);
      return withProgress(opts, call, object, (listener, token) =>
        this.#native.trashRemove(id, Boolean(opts.force), listener, token),
      );
    });
  }

  /** Restores an image from the trash under `name`. Implements rbd_trash_restore. */
  trashRestore(id, name) {
    const call = 'rbd_trash_restore';
    const object = this.#spec(name);
    return this.#life.run(call, object, () => {
      checkName(id, 'id', call, object);
      checkName(name, 'name', call, object);
      return this.#native.trashRestore(id, name);
    });
  }

  /**
   * Opens an image, optionally read-only and/or at a snapshot. Implements rbd_aio_open /
   * rbd_aio_open_read_only: the open is an aio completion, no thread waits for it.
   */
  openImage(name, opts = {}) {
    const readOnly = Boolean(opts.readOnly);
    const snapshot = opts.snapshot ?? null;
    const call = readOnly ? 'rbd_aio_open_read_only' : 'rbd_aio_open';
    const object = this.#spec(name, snapshot ?? undefined);
    return this.#life.run(call, object, async () => {
      checkName(name, 'name', call, object);
      if (snapshot !== null) checkName(snapshot, 'snapshot', call, object);
      const native = await this.#native.openImage(name, readOnly, snapshot ?? undefined);
      return new Image(INTERNAL, this, native, name, readOnly, snapshot);
    });
  }

  /**
   * Idempotent. Waits for this ioctx's in-flight calls, then drops its reference;
   * rados_ioctx_destroy runs once every Image opened through it is closed too.
   */
  close() {
    return this.#life.close(() => this.#native.close());
  }
}

// ---------------------------------------------------------------------------------------------
// Image

export class Image {
  #native;
  #life = new Lifecycle();
  #ioctx;
  #name;
  #readOnly;
  #snapshot;

  /** @internal Use Ioctx.openImage(). */
  constructor(token, ioctx, native, name, readOnly, snapshot) {
    if (token !== INTERNAL) throw new TypeError('use Ioctx.openImage()');
    this.#ioctx = ioctx;
    this.#native = native;
    this.#name = name;
    this.#readOnly = readOnly;
    this.#snapshot = snapshot;
  }

  get name() {
    return this.#name;
  }
  get ioctx() {
    return this.#ioctx;
  }
  get readOnly() {
    return this.#readOnly;
  }
  get snapshot() {
    return this.#snapshot;
  }
  get closed() {
    return this.#life.closed;
  }

  #spec(snap = this.#snapshot ?? undefined) {
    return spec(this.#ioctx.pool, this.#ioctx.namespace, this.#name, snap);
  }

  #run(call, start, snap) {
    return this.#life.run(call, this.#spec(snap), start);
  }

  /** Image size in bytes. Implements rbd_get_size. */
  size() {
    return this.#run('rbd_get_size', () => this.#native.size());
  }

  /** Implements rbd_stat + rbd_get_features + rbd_get_parent. */
  stat() {
    return this.#run('rbd_stat', async () => withStat(await this.#native.stat()));
  }

  /** Feature bits. Implements rbd_get_features. */
  features() {
    return this.#run('rbd_get_features', () => this.#native.features());
  }

  /** Image flags (RBD_FLAG_*). Implements rbd_get_flags. */
  flags() {
    return this.#run('rbd_get_flags', () => this.#native.flags());
  }

  /** The clone parent, or null. Implements rbd_get_parent. */
  parentInfo() {
    return this.#run('rbd_get_parent', () => this.#native.parentInfo());
  }

  /**
   * Allocated (or, with fromSnapshot, changed) extents. Implements rbd_diff_iterate2 with
   * include_parent = 1; covers the whole image unless offset/length say otherwise.
   */
  diffIterate(opts = {}) {
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
   * Reads `length` bytes at `offset` (into `into` when given). A read reaching past the end
   * returns a shorter buffer. Implements rbd_aio_read; the buffer stays referenced until the
   * completion fires.
   */
  read(offset, length, into) {
    const call = 'rbd_aio_read';
    return this.#run(call, async () => {
      checkUint(offset, 'offset', call, this.#spec());
      checkUint(length, 'length', call, this.#spec());
      if (into !== undefined && (!Buffer.isBuffer(into) || into.length < length)) {
        throw invalid(call, this.#spec(), 'into must be a Buffer of at least `length` bytes');
      }
      const buf = into ?? Buffer.allocUnsafe(length);
      const n = await this.#native.read(buf, offset, length);
      return n === buf.length ? buf : buf.subarray(0, n);
    });
  }

  /** Writes `data` at `offset`. Implements rbd_aio_write; `data` stays referenced until the completion fires. */
  write(offset, data) {
    const call = 'rbd_aio_write';
    return this.#run(call, () => {
      checkUint(offset, 'offset', call, this.#spec());
      if (!(data instanceof Uint8Array)) throw invalid(call, this.#spec(), 'data must be a Buffer or Uint8Array');
      const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      return this.#native.write(buf, offset);
    });
  }

  /** Implements rbd_aio_discard. */
  discard(offset, length) {
    const call = 'rbd_aio_discard';
    return this.#run(call, () => {
      checkUint(offset, 'offset', call, this.#spec());
      checkUint(length, 'length', call, this.#spec());
      return this.#native.discard(offset, length);
    });
  }

  /** Implements rbd_aio_write_zeroes. */
  writeZeroes(offset, length) {
    const call = 'rbd_aio_write_zeroes';
    return this.#run(call, () => {
      checkUint(offset, 'offset', call, this.#spec());
      checkUint(length, 'length', call, this.#spec());
      return this.#native.writeZeroes(offset, length);
    });
  }

  /** Implements rbd_aio_flush. */
  flush() {
    return this.#run('rbd_aio_flush', () => this.#native.flush());
  }

  /** Implements rbd_resize_with_progress. */
  resize(size, opts) {
    const call = 'rbd_resize_with_progress';
    return this.#run(call, () => {
      checkUint(size, 'size', call, this.#spec());
      return withProgress(opts, call, this.#spec(), (listener, token) => this.#native.resize(size, listener, token));
    });
  }

  /**
   * Copies all parent data into the clone and detaches it. Implements
   * rbd_flatten_with_progress in a worker; aborting `signal` makes the progress callback
   * return -ECANCELED (CanceledError) and leaves the image usable, partly flattened.
   */
  flatten(opts) {
    const call = 'rbd_flatten_with_progress';
    return this.#run(call, () =>
      withProgress(opts, call, this.#spec(), (listener, token) => this.#native.flatten(listener, token)),
    );
  }

  /** Implements rbd_snap_create. */
  snapCreate(name) {
    const call = 'rbd_snap_create';
    return this.#run(
      call,
      () => {
        checkName(name, 'snapshot name', call, this.#spec(name));
        return this.#native.snapCreate(name);
      },
      name,
    );
  }

  /** Implements rbd_snap_remove2 (force = RBD_SNAP_REMOVE_FORCE: unprotect, flatten children). */
  snapRemove(name, opts = {}) {
    const call = 'rbd_snap_remove2';
    return this.#run(
      call,
      () => {
        checkName(name, 'snapshot name', call, this.#spec(name));
        return withProgress(opts, call, this.#spec(name), (listener, token) =>
          this.#native.snapRemove(name, Boolean(opts.force), listener, token),
        );
      },
      name,
    );
  }

  /** Removes a snapshot by id, e.g. one in the trash namespace (clone v2). Implements rbd_snap_remove_by_id. */
  snapRemoveById(id) {
    const call = 'rbd_snap_remove_by_id';
    return this.#run(call, () => {
      checkUint(id, 'id', call, this.#spec());
      return this.#native.snapRemoveById(id);
    });
  }

  /**
   * All snapshots, including the trash namespace. Implements rbd_snap_list,
   * rbd_snap_get_namespace_type, rbd_snap_get_trash_namespace and rbd_snap_get_timestamp.
   */
  snapList() {
    return this.#run('rbd_snap_list', async () => {
      const snaps = await this.#native.snapList();
      return snaps.map((s) => {
        const out = { id: s.id, name: s.name, size: s.size, namespace: s.namespace };
        if (s.originalName !== undefined) out.originalName = s.originalName;
        if (s.timestamp !== undefined) out.timestamp = new Date(s.timestamp);
        return out;
      });
    });
  }

  /** Implements rbd_snap_protect. */
  snapProtect(name) {
    return this.#snapCall('rbd_snap_protect', name, () => this.#native.snapProtect(name));
  }

  /** Implements rbd_snap_unprotect. */
  snapUnprotect(name) {
    return this.#snapCall('rbd_snap_unprotect', name, () => this.#native.snapUnprotect(name));
  }

  /** Implements rbd_snap_is_protected. */
  snapIsProtected(name) {
    return this.#snapCall('rbd_snap_is_protected', name, () => this.#native.snapIsProtected(name));
  }

  /** Implements rbd_snap_exists. */
  snapExists(name) {
    return this.#snapCall('rbd_snap_exists', name, () => this.#native.snapExists(name));
  }

  #snapCall(call, name, start) {
    return this.#run(
      call,
      () => {
        checkName(name, 'snapshot name', call, this.#spec(name));
        return start();
      },
      typeof name === 'string' ? name : undefined,
    );
  }

  /** Clones of the snapshot this image is opened at (or set with snapSet). Implements rbd_list_children3. */
  listChildren() {
    return this.#run('rbd_list_children3', () => this.#native.listChildren());
  }

  /** Switches the handle to a snapshot, or back to the head with null. Implements rbd_snap_set. */
  snapSet(name) {
    const call = 'rbd_snap_set';
    return this.#run(
      call,
      async () => {
        if (name !== null) checkName(name, 'snapshot name', call, this.#spec(name));
        await this.#native.snapSet(name);
        this.#snapshot = name;
      },
      name ?? undefined,
    );
  }

  /** Value of an image metadata key, or null. Implements rbd_metadata_get. */
  metadataGet(key) {
    const call = 'rbd_metadata_get';
    return this.#run(call, () => {
      checkName(key, 'key', call, this.#spec());
      return this.#native.metadataGet(key);
    });
  }

  /** Implements rbd_metadata_set. */
  metadataSet(key, value) {
    const call = 'rbd_metadata_set';
    return this.#run(call, () => {
      checkName(key, 'key', call, this.#spec());
      if (typeof value !== 'string') throw invalid(call, this.#spec(), 'value must be a string');
      return this.#native.metadataSet(key, value);
    });
  }

  /** Implements rbd_metadata_remove. */
  metadataRemove(key) {
    const call = 'rbd_metadata_remove';
    return this.#run(call, () => {
      checkName(key, 'key', call, this.#spec());
      return this.#native.metadataRemove(key);
    });
  }

  /** All image metadata. Implements rbd_metadata_list. */
  metadataList() {
    return this.#run('rbd_metadata_list', () => this.#native.metadataList());
  }

  /**
   * Takes the advisory exclusive lock. Implements rbd_lock_exclusive. EBUSY (held by someone
   * else) and EEXIST (already held with this cookie) both reject with BusyError. librbd's
   * exclusive lock carries no tag: `tag` is accepted for symmetry with shared locks and unused.
   */
  lockAcquireExclusive(cookie, tag) {
    const call = 'rbd_lock_exclusive';
    return this.#run(call, async () => {
      checkName(cookie, 'cookie', call, this.#spec());
      if (tag !== undefined && typeof tag !== 'string') throw invalid(call, this.#spec(), 'tag must be a string');
      try {
        await this.#native.lockExclusive(cookie);
      } catch (err) {
        if (err?.errno === E.EEXIST) {
          throw new BusyError(`${call} failed for ${this.#spec()}: lock already held with cookie ${JSON.stringify(cookie)} (EEXIST)`, {
            errno: E.EEXIST,
            call,
            object: this.#spec(),
          });
        }
        throw err;
      }
    });
  }

  /** Releases an advisory lock this client holds. Implements rbd_unlock. */
  unlock(cookie) {
    const call = 'rbd_unlock';
    return this.#run(call, () => {
      checkName(cookie, 'cookie', call, this.#spec());
      return this.#native.unlock(cookie);
    });
  }

  /** Holders of the advisory lock. Implements rbd_list_lockers. */
  listLockers() {
    return this.#run('rbd_list_lockers', () => this.#native.listLockers());
  }

  /** Breaks another client's advisory lock. Implements rbd_break_lock. */
  breakLock(client, cookie) {
    const call = 'rbd_break_lock';
    return this.#run(call, () => {
      checkName(client, 'client', call, this.#spec());
      checkName(cookie, 'cookie', call, this.#spec());
      return this.#native.breakLock(client, cookie);
    });
  }

  /** Idempotent. Waits for in-flight I/O, then closes the image with rbd_aio_close. */
  close() {
    return this.#life.close(() => this.#native.close());
  }
}
