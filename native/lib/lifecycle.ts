// The life of one handle (Cluster, Ioctx or Image): the closed guard and the calls in flight, so that
// close() can wait for them. The C++ side refcounts the underlying rados_t / rados_ioctx_t / rbd_image_t
// (an Ioctx keeps its cluster alive, an Image its ioctx); this class only decides when JS may call in.
import { Errno, errorFromErrno, translate } from './errors.js';

/**
 * Only this package constructs handles: each class's constructor is private and also checks this token,
 * so plain JS calling `new Image()` gets a TypeError naming the right factory.
 */
export const INTERNAL: unique symbol = Symbol('ceph-rbd-napi internal');

export class Lifecycle {
  readonly #inflight = new Set<Promise<unknown>>();
  #closing: Promise<void> | null = null;

  get closed(): boolean {
    return this.#closing !== null;
  }

  /**
   * Runs one call on the handle. A closed handle rejects with ClosedError (EBADF) before anything reaches
   * C; a synchronous throw of `start` (an argument check) rejects; a native rejection is mapped through
   * errorFromErrno. The call counts as in flight on this handle and on `also` (other handles it uses, e.g.
   * a clone's destination ioctx) until it settles.
   */
  async run<T>(call: string, object: string | undefined, start: () => Promise<T>, also: readonly Lifecycle[] = []): Promise<T> {
    if (this.closed) throw errorFromErrno(Errno.EBADF, call, object);
    for (const other of also) if (other.closed) throw errorFromErrno(Errno.EBADF, call, object);
    let promise: Promise<T>;
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

  /**
   * A synchronous call (rados_conf_get): the closed guard and the error mapping, nothing to wait for.
   */
  runSync<T>(call: string, object: string | undefined, start: () => T): T {
    if (this.closed) throw errorFromErrno(Errno.EBADF, call, object);
    try {
      return start();
    } catch (err) {
      throw translate(err);
    }
  }

  /** Idempotent: the first call marks the handle closed, waits for in-flight calls, then runs `finish`. */
  close(finish: () => Promise<void>): Promise<void> {
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
