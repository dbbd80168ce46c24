// The error classes and the one errno -> error class table. The C++ side reports raw errnos with the C
// call and the object it concerned; every rejection the package hands out goes through errorFromErrno.
import { constants as osConstants } from 'node:os';
import { getSystemErrorMap } from 'node:util';

const known: Readonly<Record<string, number | undefined>> = osConstants.errno;
/** An errno by name, with its Linux value for the few that os.constants lacks. */
function errno(name: string, linux: number): number {
  return known[name] ?? linux;
}

/** The errnos the package maps or raises itself (positive, Linux values). */
export const Errno = Object.freeze({
  ENOENT: errno('ENOENT', 2),
  EIO: errno('EIO', 5),
  EBADF: errno('EBADF', 9),
  EACCES: errno('EACCES', 13),
  EPERM: errno('EPERM', 1),
  EBUSY: errno('EBUSY', 16),
  EEXIST: errno('EEXIST', 17),
  EXDEV: errno('EXDEV', 18),
  EINVAL: errno('EINVAL', 22),
  ENOSPC: errno('ENOSPC', 28),
  EROFS: errno('EROFS', 30),
  ENOSYS: errno('ENOSYS', 38),
  ENOTEMPTY: errno('ENOTEMPTY', 39),
  ELIBACC: errno('ELIBACC', 79),
  EOPNOTSUPP: errno('EOPNOTSUPP', 95),
  ESHUTDOWN: errno('ESHUTDOWN', 108),
  ENOTCONN: errno('ENOTCONN', 107),
  ETIMEDOUT: errno('ETIMEDOUT', 110),
  EDQUOT: errno('EDQUOT', 122),
  ECANCELED: errno('ECANCELED', 125),
});

export interface RbdErrorDetails {
  errno?: number;
  call?: string;
  object?: string | undefined;
  cause?: unknown;
}

/** Base of every error this package throws. */
export class RbdError extends Error {
  static readonly code: string = 'RBD_ERROR';
  /** What the error class means, used in messages built from an errno. */
  static readonly description: string = 'failed';

  /** Stable code, e.g. 'NOT_FOUND'. */
  readonly code: string;
  /** Positive errno from librados/librbd (EBADF for ClosedError), or implied by the JS-side guard. */
  readonly errno: number;
  /** The C function that failed, e.g. "rbd_open", or would have been called. */
  readonly call: string;
  /** The pool/image@snapshot it concerned. */
  readonly object: string | undefined;

  constructor(message: string, details: RbdErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    const cls = new.target as typeof RbdError;
    this.name = cls.name;
    this.code = cls.code;
    this.errno = details.errno ?? 0;
    this.call = details.call ?? '';
    this.object = details.object;
  }
}

/** ENOENT: image, pool, snapshot, key or lock not found. */
export class NotFoundError extends RbdError {
  static override readonly code: string = 'NOT_FOUND';
  static override readonly description: string = 'not found';
}
/** EEXIST */
export class ExistsError extends RbdError {
  static override readonly code: string = 'EXISTS';
  static override readonly description: string = 'already exists';
}
/** EBUSY: open elsewhere, protected, locked, or has dependent clones. */
export class BusyError extends RbdError {
  static override readonly code: string = 'BUSY';
  static override readonly description: string = 'busy (open elsewhere, locked, or has dependent clones)';
}
/** ENOTEMPTY: the image has snapshots. */
export class HasSnapshotsError extends RbdError {
  static override readonly code: string = 'HAS_SNAPSHOTS';
  static override readonly description: string = 'image has snapshots';
}
/** EPERM / EACCES */
export class PermissionError extends RbdError {
  static override readonly code: string = 'PERMISSION';
  static override readonly description: string = 'permission denied';
}
/** EROFS */
export class ReadOnlyError extends RbdError {
  static override readonly code: string = 'READ_ONLY';
  static override readonly description: string = 'read-only';
}
/** ENOSPC / EDQUOT */
export class NoSpaceError extends RbdError {
  static override readonly code: string = 'NO_SPACE';
  static override readonly description: string = 'no space left or quota exceeded';
}
/** ETIMEDOUT */
export class TimeoutError extends RbdError {
  static override readonly code: string = 'TIMEOUT';
  static override readonly description: string = 'timed out';
}
/** ECANCELED: an AbortSignal aborted the operation. */
export class CanceledError extends RbdError {
  static override readonly code: string = 'CANCELED';
  static override readonly description: string = 'canceled';
}
/** EINVAL, and argument checks made in JS. */
export class InvalidArgumentError extends RbdError {
  static override readonly code: string = 'INVALID_ARGUMENT';
  static override readonly description: string = 'invalid argument';
}
/** EOPNOTSUPP / ENOSYS */
export class NotSupportedError extends RbdError {
  static override readonly code: string = 'NOT_SUPPORTED';
  static override readonly description: string = 'not supported';
}
/** ENOTCONN / ESHUTDOWN, and EIO while connecting. */
export class ConnectionError extends RbdError {
  static override readonly code: string = 'CONNECTION';
  static override readonly description: string = 'no connection to the cluster';
}
/** EXDEV: objects of two different Cluster connections in one call (clone). */
export class CrossClusterError extends RbdError {
  static override readonly code: string = 'CROSS_CLUSTER';
  static override readonly description: string = 'the objects belong to different cluster connections';
}
/** A call on a closed Cluster, Ioctx or Image (errno EBADF). Raised in JS; never reaches C. */
export class ClosedError extends RbdError {
  static override readonly code: string = 'CLOSED';
  static override readonly description: string = 'handle is closed';
}
/** The addon or librbd/librados cannot be loaded; the message says what is missing and how to fix it. */
export class NativeUnavailableError extends RbdError {
  static override readonly code: string = 'NATIVE_UNAVAILABLE';
}

/** The one errno -> error class table. */
const ERRNO_CLASSES: ReadonlyMap<number, typeof RbdError> = new Map([
  [Errno.ENOENT, NotFoundError],
  [Errno.EEXIST, ExistsError],
  [Errno.EBUSY, BusyError],
  [Errno.ENOTEMPTY, HasSnapshotsError],
  [Errno.EPERM, PermissionError],
  [Errno.EACCES, PermissionError],
  [Errno.EROFS, ReadOnlyError],
  [Errno.ENOSPC, NoSpaceError],
  [Errno.EDQUOT, NoSpaceError],
  [Errno.ETIMEDOUT, TimeoutError],
  [Errno.ECANCELED, CanceledError],
  [Errno.EINVAL, InvalidArgumentError],
  [Errno.EOPNOTSUPP, NotSupportedError],
  [Errno.ENOSYS, NotSupportedError],
  [Errno.EXDEV, CrossClusterError],
  [Errno.ENOTCONN, ConnectionError],
  [Errno.ESHUTDOWN, ConnectionError],
  [Errno.EBADF, ClosedError],
]);

/** C functions that establish the connection: an EIO from them is a connection failure. */
const CONNECT_CALLS: ReadonlySet<string> = new Set(['rados_connect', 'rados_cluster_fsid']);

/** [name, description] of a positive errno, from Node's table. */
function systemError(n: number): [string, string] | undefined {
  return getSystemErrorMap().get(-n);
}

/**
 * The one errno → error class table: the error for a librados/librbd return code.
 * @param errno positive (a negative value is accepted and negated)
 * @param call the C function name, e.g. "rbd_open"
 * @param object the pool/image/snapshot it concerned
 */
export function errorFromErrno(errno: number, call: string, object?: string): RbdError {
  const n = Math.abs(errno);
  let Cls = ERRNO_CLASSES.get(n) ?? RbdError;
  if (n === Errno.EIO && CONNECT_CALLS.has(call)) Cls = ConnectionError;
  const name = systemError(n)?.[0] ?? `errno ${n}`;
  const description = Cls === RbdError ? (systemError(n)?.[1] ?? 'failed') : Cls.description;
  const message = `${call} failed${object ? ` for ${object}` : ''}: ${description} (${name})`;
  return new Cls(message, { errno: n, call, object });
}

/** What the addon rejects with: a plain Error carrying the errno, the C call and the object. */
interface NativeFailure {
  errno: number;
  call: string;
  object?: string;
}

function isNativeFailure(err: unknown): err is NativeFailure {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as Partial<Record<keyof NativeFailure, unknown>>;
  return typeof e.errno === 'number' && typeof e.call === 'string';
}

/** A rejection from the addon carries errno/call/object; map it through the table. Anything else passes. */
export function translate(err: unknown): unknown {
  if (err instanceof RbdError) return err;
  if (isNativeFailure(err)) return errorFromErrno(err.errno, err.call, err.object);
  return err;
}

/** An InvalidArgumentError (EINVAL) whose message says what was wrong with the argument. */
export function invalid(call: string, object: string | undefined, what: string): RbdError {
  const err = errorFromErrno(Errno.EINVAL, call, object);
  err.message = `${call} failed${object ? ` for ${object}` : ''}: ${what}`;
  return err;
}
