// ProgressOptions wired to the addon: a CancelToken fed by the AbortSignal (librbd's progress callback then
// returns -ECANCELED), on which that callback also leaves its latest sample; a timer of the JS thread reads it
// and calls the listener, which cannot break the Ceph operation. (A listener the addon called itself would be
// woken by a librbd thread holding the thread-safe function's mutex: preempted there on a busy machine, that
// thread kept the JS thread waiting on the mutex for 15-20 ms, issue 20.)
import { load, type CancelToken, type ProgressListener } from './binding.js';
import { Errno, errorFromErrno } from './errors.js';

/** How often the listener is given librbd's latest progress. */
const PROGRESS_MS = 50;

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
  if (signal || listener) token = new (load().CancelToken)();
  if (signal && token) {
    const t = token;
    const abort = (): void => t.cancel();
    signal.addEventListener('abort', abort, { once: true });
    detach = () => signal.removeEventListener('abort', abort);
  }
  return { listener, token, detach };
}

/**
 * Starts a call that takes a cancel token (the addon's only progress channel: see the top of this file),
 * and gives the listener the token's progress every PROGRESS_MS
 * while it runs (a new sample only), and (total, total) once it succeeded. An already aborted signal throws
 * CanceledError before anything reaches C.
 */
export async function withProgress<T>(
  opts: ProgressOptions | undefined,
  call: string,
  object: string,
  start: (token: CancelToken | undefined) => Promise<T>,
): Promise<T> {
  const { listener, token, detach } = progressArgs(opts, call, object);
  let timer: NodeJS.Timeout | undefined;
  let seen = 0;
  let seenTotal = 0;
  if (listener && token) {
    timer = setInterval(() => {
      const [done, total] = token.progress;
      if (total === 0 || (done === seen && total === seenTotal)) return;
      seen = done;
      seenTotal = total;
      listener(done, total);
    }, PROGRESS_MS);
    // The call itself keeps the process alive; the poll must not.
    timer.unref();
  }
  try {
    const value = await start(token);
    const total = token?.progress[1] ?? 0;
    if (listener && total > 0) listener(total, total);
    return value;
  } finally {
    clearInterval(timer);
    detach();
  }
}
