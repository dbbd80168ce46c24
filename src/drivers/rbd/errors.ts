// The RBD driver's error mapping: ceph-rbd-napi codes (librbd errnos) and snapstore's ceph-layer errors →
// the StoreError a caller switches on. Only this driver knows these codes; store.ts stays backend-neutral.
import { SnapstoreError, codeOf, type ErrorContext } from '../../errors.js';
import {
  StoreAborted,
  StoreClosed,
  StoreError,
  StoreExists,
  StoreFull,
  StoreInUse,
  StoreNotFound,
  StorePermission,
  StoreUnavailable,
} from '../../store.js';

type ErrorOptions = { cause?: unknown; context?: ErrorContext };

/** Native ceph-rbd-napi error codes → the store error that means the same to a caller. */
const NATIVE_CODES: Record<string, (message: string, options: ErrorOptions) => StoreError> = {
  NOT_FOUND: (m, o) => new StoreNotFound(m, o),
  EXISTS: (m, o) => new StoreExists(m, o),
  BUSY: (m, o) => new StoreInUse(m, o),
  HAS_SNAPSHOTS: (m, o) => new StoreInUse(m, o),
  PERMISSION: (m, o) => new StorePermission(m, o),
  READ_ONLY: (m, o) => new StorePermission(m, o),
  NO_SPACE: (m, o) => new StoreFull(m, o),
  TIMEOUT: (m, o) => new StoreUnavailable(m, o),
  CONNECTION: (m, o) => new StoreUnavailable(m, o),
  NATIVE_UNAVAILABLE: (m, o) => new StoreUnavailable(m, o),
  CEPH_CONFIG: (m, o) => new StoreUnavailable(m, o),
  CANCELED: (m, o) => new StoreAborted(m, o),
  CLOSED: (m, o) => new StoreClosed(m, o),
  INVALID_ARGUMENT: (m, o) => new StoreError('INVALID_ARGUMENT', m, o),
  NOT_SUPPORTED: (m, o) => new StoreError('NOT_SUPPORTED', m, o),
  CROSS_CLUSTER: (m, o) => new StoreError('CROSS_CLUSTER', m, o),
};

/**
 * Turns an error from the RBD layer (a ceph-rbd-napi RbdError, or a snapstore ceph-layer error such as
 * CephUnavailable / CephConfigError) into the StoreError a caller switches on, keeping the original as
 * `cause`. Store errors pass through unchanged; anything unrecognised becomes a StoreError `STORE_ERROR`.
 * @param what what was being done, for the message, e.g. `removing images/1234`.
 */
export function mapRbdError(err: unknown, what: string, context: ErrorContext = {}): StoreError {
  if (err instanceof StoreError) return err;
  const detail = err instanceof Error ? err.message : String(err);
  const message = `${what}: ${detail}`;
  const code = codeOf(err);
  const ctx: ErrorContext = { ...(err instanceof SnapstoreError ? err.context : {}), ...context };
  if (code !== undefined) ctx.cephCode = code;
  const { errno, call } = (err ?? {}) as { errno?: unknown; call?: unknown };
  if (typeof errno === 'number') ctx.errno = errno;
  if (typeof call === 'string') ctx.call = call;
  const make = code !== undefined ? NATIVE_CODES[code] : undefined;
  if (make) return make(message, { cause: err, context: ctx });
  return new StoreError('STORE_ERROR', message, { cause: err, context: ctx });
}

/** Runs a Ceph call, turning its error into a StoreError. */
export async function ceph<T>(what: string, context: ErrorContext, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw mapRbdError(err, what, context);
  }
}

/** `call`'s result, or `missing` when what it concerns does not exist (ENOENT); other errors mapped. */
export async function unlessMissing<T, M>(what: string, context: ErrorContext, missing: M, call: () => Promise<T>): Promise<T | M> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof StoreNotFound || codeOf(err) === 'NOT_FOUND') return missing;
    throw mapRbdError(err, what, context);
  }
}
