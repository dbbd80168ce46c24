/**
 * ceph-rbd-napi — async bindings over librados and librbd.
 *
 * The object graph follows Ceph's own bindings: {@link Cluster} → {@link Ioctx} → {@link Image}.
 * Every method returns a Promise; no librados/librbd call runs on the JS thread. I/O goes through
 * librbd aio completions; admin calls run in worker threads. Each method's doc names the C
 * function(s) it implements. The C++ side (../src) is glue only: it makes the calls off the JS thread
 * and reports raw errnos; these modules hold the class structure, the guards (closed handles, argument
 * checks), AbortSignal handling, in-flight tracking for close(), and the one errno → error class table.
 *
 * Importing this module does not load the addon. The first call that needs it loads it, and if it
 * cannot, rejects with {@link NativeUnavailableError} whose message says how to fix it.
 *
 * Sizes and offsets are JS numbers (images must stay below 2^53 bytes); where noted a bigint is
 * accepted as well.
 *
 * @packageDocumentation
 */
export type { ProgressOptions } from './abort.js';
export { isAvailable, trimMemory } from './binding.js';
export { Cluster } from './cluster.js';
export {
  BusyError,
  CanceledError,
  ClosedError,
  ConnectionError,
  CrossClusterError,
  errorFromErrno,
  ExistsError,
  HasSnapshotsError,
  InvalidArgumentError,
  NativeUnavailableError,
  NoSpaceError,
  NotFoundError,
  NotSupportedError,
  PermissionError,
  RbdError,
  ReadOnlyError,
  TimeoutError,
  type RbdErrorDetails,
} from './errors.js';
/** Aliases named after the python binding's classes. */
export {
  BusyError as ImageBusyError,
  ExistsError as ImageExistsError,
  HasSnapshotsError as ImageHasSnapshotsError,
  NotFoundError as ImageNotFoundError,
} from './errors.js';
export { FEATURES, featureBits, featureNames, type FeatureName } from './features.js';
export { Image } from './image.js';
export { Ioctx } from './ioctx.js';
export * from './group.js';
export * from './rados.js';
export type { MgrCommandOptions, MgrCommandResult } from './mgr.js';
export type * from './types.js';
