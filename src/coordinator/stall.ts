// A cluster stopped for good must not hold a run for ever. librados bounds each OSD op by
// rados_osd_op_timeout, but librbd does not give up: an image with the exclusive-lock feature whose watch
// broke waits to re-register it before it re-acquires the lock (ManagedLock's STATE_WAITING_FOR_REGISTER)
// and re-watches for as long as it takes, so a flatten or a write stalls without end while every single op
// is bounded. So snapstore bounds stalls itself: an operation that reports progress fails once it has
// reported none for the connection's op bound; an undo action fails after the same bound. librbd's call
// cannot be cancelled: it is left running (its result ignored) and the run is rolled back without it.
import type { CephCluster } from '../ceph/index.js';
import { OP_TIMEOUT_MS } from '../ceph/cluster.js';
import { hasCode, SnapstoreError } from '../errors.js';

/**
 * The stall bound of these connections: the longest rados_osd_op_timeout among them (what each was
 * connected with: ceph.conf's, or snapstore's 300 s default); 0 in Ceph means none, then the default.
 */
export function stallBoundMs(...sessions: Array<CephCluster | null | undefined>): number {
  let bound = 0;
  for (const s of sessions) {
    if (!s || s.closed) continue;
    let seconds = Number.NaN;
    try {
      seconds = Number.parseFloat(s.confGet('rados_osd_op_timeout'));
    } catch {
      // A connection that cannot say keeps the default.
    }
    bound = Math.max(bound, Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : OP_TIMEOUT_MS);
  }
  return bound > 0 ? bound : OP_TIMEOUT_MS;
}

/** The error a stalled operation fails with (`cause`: librados' own timeout, when it said so first). */
export function stalled(what: string, boundMs: number, cause?: unknown): SnapstoreError {
  return new SnapstoreError(
    'CEPH_UNREACHABLE',
    `${what} made no progress for ${Math.round(boundMs / 1000)} s (the connection's rados_osd_op_timeout): the cluster is judged unreachable`,
    { context: { what, boundMs }, ...(cause === undefined ? {} : { cause }) },
  );
}

/** Watches one operation: `touch()` on every progress; `race()` fails it after `boundMs` without one. */
export class StallWatch {
  private last = Date.now();

  constructor(
    private readonly boundMs: number,
    private readonly what: string,
    private readonly onStall: () => void = () => {},
  ) {}

  touch(): void {
    this.last = Date.now();
  }

  async race<T>(op: Promise<T>): Promise<T> {
    // The operation may settle long after the run gave up on it: its outcome then goes nowhere.
    op.catch(() => {});
    let timer: NodeJS.Timeout | undefined;
    const watchdog = new Promise<never>((_, reject) => {
      const check = () => {
        const idle = Date.now() - this.last;
        if (idle < this.boundMs) {
          timer = setTimeout(check, this.boundMs - idle);
          return;
        }
        this.onStall();
        reject(stalled(this.what, this.boundMs));
      };
      timer = setTimeout(check, this.boundMs);
    });
    // An OSD op that got no answer within rados_osd_op_timeout fails librbd's call with ETIMEDOUT: the same
    // judgement as the watchdog's, by the same bound, and whichever says it first (a matter of
    // milliseconds) must give the same error.
    const judged = op.catch((err: unknown) => {
      throw hasCode(err, 'TIMEOUT') ? stalled(this.what, this.boundMs, err) : err;
    });
    try {
      return await Promise.race([judged, watchdog]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** `op` bounded by `boundMs` as a whole (an undo action: no progress to watch). */
export function bounded<T>(op: Promise<T>, boundMs: number, what: string): Promise<T> {
  return new StallWatch(boundMs, what).race(op);
}
