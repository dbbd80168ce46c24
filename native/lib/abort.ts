// ProgressOptions wired to the addon: a listener that cannot break the Ceph operation, and a CancelToken
// fed by the AbortSignal (librbd's progress callback then returns -ECANCELED).
import { load, type CancelToken, type ProgressListener } from './binding.js';
import { Errno, errorFromErrno } from './errors.js';

export interface ProgressOptions {
  /** Called on the JS thread with librbd's progress, throttled to about every 50 ms and once with (total, total) on success. Exceptions it throws are ignored. */
  onProgress?: ((done: number, total: number) => void) | undefined;
  /** Aborting makes librbd's progress callback return -ECANCELED: the call rejects with {@link CanceledError}. */
  signal?: AbortSignal | undefined;
}

interface ProgressArgs {
  listener: ProgressListener | undefined;
  token: CancelToken | undefined;
  /** Removes the abort listener from the signal once the call settled. */
  detach: () => void;
}

function progressArgs(opts: ProgressOptions | undefined, call: string, object: string): ProgressArgs {
  const { onProgress, signal } = opts ?? {};
  if (signal?.aborted) throw errorFromErrno(Errno.ECANCELED, call, object);
  let listener: ProgressListener | undefined;
  if (typeof onProgress === 'function') {
    listener = (done, total) => {
      try {
        onProgress(done, total);
      } catch {
        // A failing listener must not abort the Ceph operation; use the signal for that.
      }
    };
  }
  let token: CancelToken | undefined;
  let detach = (): void => {};
  if (signal) {
    const t = new (load().CancelToken)();
    const abort = (): void => t.cancel();
    signal.addEventListener('abort', abort, { once: true });
    detach = () => signal.removeEventListener('abort', abort);
    token = t;
  }
  return { listener, token, detach };
}

/**
 * Starts a call that takes a progress listener and a cancel token. An already aborted signal throws
 * CanceledError before anything reaches C.
 */
export async function withProgress<T>(
  opts: ProgressOptions | undefined,
  call: string,
  object: string,
  start: (listener: ProgressListener | undefined, token: CancelToken | undefined) => Promise<T>,
): Promise<T> {
  const { listener, token, detach } = progressArgs(opts, call, object);
  try {
    return await start(listener, token);
  } finally {
    detach();
  }
}
