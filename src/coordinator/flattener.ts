// The Flattener: finishes instant snapshots. It finds the clones whose RBD metadata carries a flatten
// request (`snapstore.flatten`, see instant.ts) in the target pool, flattens each under an advisory RBD
// lock, lets the trashed source snapshot go, and removes the request. Any number of flatteners may run
// (in `snapstore flattener` processes or embedded): the lock makes one work on an image at a time, and
// work a killed flattener left is picked up by the next. Each flatten also holds a lease in the pool's run
// journal (journal/flatten-lease.ts), renewed while it runs: a peer takes the image over (blocklisting the
// old owner's client, breaking its lock) only once that lease expired or its owner is provably dead (same
// host, boot and PID namespace, pid gone) — never while it is renewed. A lock of a flattener from before
// the journal (no lease) is broken when older than `staleLockMs`.
// Most instant snapshots are flattened by ceph-mgr's task queue instead (mgr-flatten.ts): the flattener
// leaves those to it while the mgr has them, takes over a task that failed or vanished, and removes the
// queue entry of an image the mgr has finished.
import type { RbdSourceConfig, RbdTargetConfig } from '../config/types.js';
import { CephCluster, releaseMemory, type Image, type Ioctx } from '../ceph/index.js';
import { SnapstoreError, hasCode } from '../errors.js';
import { isNotFound } from './classify.js';
import { errorText } from './events.js';
import { flattenStatus, type FlattenStatus } from './flatten-status.js';
import { dequeueFlatten, pendingFlattens, type QueuedFlatten } from './flatten-queue.js';
import { takeLock } from './flatten-lock.js';
import { FLATTEN_KEY, decodeFlattenRequest, removeUnusedTrashedSnapshots, type FlattenRequest } from './instant.js';
import { queueLinkedFlatten } from './linked.js';
import { cancelMgrTask, listMgrTasks, mgrVerdict, type MgrTask } from './mgr-flatten.js';
import { takeFlattenLease } from './journal/flatten-lease.js';
import type { Lease } from './journal/lease.js';
import { isRbdSource } from './source-kind.js';
import { parseSource, type Source } from './source.js';

export interface FlattenerOptions {
  /**
   * The connection to flatten with: the source cluster as nova's user (flattening reads the source
   * pool, which Glance's user usually may not). Its `pool` is not used.
   */
  source: Pick<RbdSourceConfig, 'confPath' | 'user' | 'keyring' | 'connectTimeoutMs'>;
  /** The pool instant snapshots are in (the target store's pool). */
  target: Pick<RbdTargetConfig, 'pool'>;
  /**
   * The image store's user (Glance's): reads ceph-mgr's task queue, to leave the images the mgr flattens to
   * it. Without it a mgr-queued image is left to the mgr for MGR_GRACE_MS after it was queued.
   */
  storeUser?: Pick<RbdTargetConfig, 'confPath' | 'user' | 'keyring' | 'connectTimeoutMs'>;
  /** A lock older than this is broken even when its owner cannot be proven dead (another host). Default 1 hour. */
  staleLockMs?: number;
  /**
   * Only these images (ids in the target pool); default every image with a flatten request. A linked
   * snapshot (`flatten: 'never'`) named here is queued and flattened too: detached on demand.
   */
  images?: string[];
  /**
   * The first pass also opens every image of the pool, for clones queued by versions before the journal
   * indexed the queue (and indexes them); later polls read the index only. Default false.
   */
  scanImages?: boolean;
  /** `run()` looks for new work this often. Default 5 s. */
  pollMs?: number;
  logger?: (event: FlattenerEvent) => void;
}

export type FlattenerEvent =
  | { type: 'flatten'; image: string; state: 'start' | 'done' | 'skipped' | 'failed' | 'cancelled'; why?: string; ms?: number }
  | { type: 'progress'; image: string; done: number; total: number }
  | { type: 'lock-broken'; image: string; holder: string; why: string }
  | { type: 'mgr-takeover'; image: string; why: string };

export interface FlattenReport {
  flattened: string[];
  skipped: Array<{ image: string; why: string }>;
  failed: Array<{ image: string; error: string }>;
}

export const DEFAULT_STALE_LOCK_MS = 60 * 60 * 1000;
const DEFAULT_POLL_MS = 5000;
export type Outcome = { state: 'done' } | { state: 'skipped'; why: string };

/**
 * Flattens one image if it has a flatten request. Used by Flattener and by the coordinator's
 * prepareSourceRemoval. Throws what flatten throws (CanceledError when `signal` aborts).
 */
export async function flattenImage(
  session: CephCluster,
  io: Ioctx,
  name: string,
  opts: { staleLockMs: number; signal?: AbortSignal; emit: (e: FlattenerEvent) => void; mgr?: MgrView },
): Promise<Outcome> {
  let image: Image;
  try {
    image = await io.openImage(name);
  } catch (err) {
    if (isNotFound(err)) return { state: 'skipped', why: 'the image is gone' };
    throw err;
  }
  let cookie: string | null = null;
  let lease: Lease | null = null;
  let flattened = false;
  // A peer that took over our expired lease stops this flatten (it may be flattening the image itself).
  const leaseLost = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, leaseLost.signal]) : leaseLost.signal;
  try {
    const request = decodeFlattenRequest(await image.metadataGet(FLATTEN_KEY));
    // A run writes the request once its clone is finished and unlocked (paths/direct.ts), before Glance has
    // it: flattening then is what happens anyway; if that run dies, gc removes the clone (breaking our lock).
    if (!request) return { state: 'skipped', why: 'nothing to flatten' };
    if (request.mgrTask && (await image.parentInfo()) !== null) {
      const verdict = mgrVerdict(opts.mgr ? await opts.mgr.queue() : null, request.mgrTask.id, request.mgrTask.queuedAt);
      if (!verdict.take) return { state: 'skipped', why: verdict.why };
      if (verdict.cancel && opts.mgr) await opts.mgr.cancel(verdict.cancel);
      opts.emit({ type: 'mgr-takeover', image: name, why: verdict.why });
    }

    const held = await takeFlattenLease(session, io, name, (why) => leaseLost.abort(new SnapstoreError('LEASE_LOST', why)));
    if ('skipped' in held) return { state: 'skipped', why: held.skipped };
    lease = held.lease;
    const taken = await takeLock(image, name, { ...opts, previous: held.previous });
    if (typeof taken !== 'string') return taken;
    cookie = taken;
    // Another flattener may have finished it between our read and our lock.
    const current = decodeFlattenRequest(await image.metadataGet(FLATTEN_KEY));
    if (!current) return { state: 'skipped', why: 'flattened meanwhile' };

    if ((await image.parentInfo()) !== null) {
      flattened = true;
      await image.flatten({
        signal,
        onProgress: (done, total) => opts.emit({ type: 'progress', image: name, done, total }),
      });
    }
    if ((await image.parentInfo()) !== null) {
      throw new SnapstoreError('FLATTEN_FAILED', `${io.pool}/${name} still has a parent after flatten (its snapshots lack deep-flatten)`);
    }
    await releaseSourceSnapshot(session, current);
    await dequeueFlatten(image);
    return { state: 'done' };
  } finally {
    if (cookie) await image.unlock(cookie).catch(() => {});
    await image.close();
    await lease?.release().catch(() => {});
    // A flattener runs for days: give what this flatten's buffers took back to the kernel. Only after a
    // flatten: each poll passes every queued clone through here.
    if (flattened) await releaseMemory();
  }
}

/** ceph-mgr's task queue as the store's user sees it (read once per pass), and cancelling a task. */
export interface MgrView {
  queue(): Promise<{ tasks: MgrTask[] } | { error: string }>;
  cancel(taskId: string): Promise<void>;
}

/** A MgrView over `session` that reads the queue once and keeps it for `ttlMs`. */
export function mgrView(session: CephCluster, ttlMs = 2000): MgrView {
  let cached: { at: number; queue: Promise<{ tasks: MgrTask[] } | { error: string }> } | null = null;
  return {
    queue() {
      if (!cached || Date.now() - cached.at > ttlMs) cached = { at: Date.now(), queue: listMgrTasks(session) };
      return cached.queue;
    },
    cancel: (taskId) => cancelMgrTask(session, taskId),
  };
}

/**
 * Lets go of the source snapshot the clone hung from. librbd removes a trashed snapshot when its last clone
 * is flattened; this covers the case where it could not (and is a no-op otherwise).
 */
async function releaseSourceSnapshot(session: CephCluster, request: FlattenRequest): Promise<void> {
  if (!request.sourceSnap) return;
  let src: Source;
  try {
    src = parseSource(request.source, undefined);
  } catch {
    return;
  }
  if (!isRbdSource(src) || src.fsid !== session.fsid) return;
  await removeUnusedTrashedSnapshots(await session.pool(src.pool), src.image, request.sourceSnap);
}

/** Finishes instant snapshots (see the file comment). */
export class Flattener {
  private readonly opts: FlattenerOptions;
  private session: Promise<CephCluster> | null = null;
  private storeSession: Promise<CephCluster> | null = null;
  private scannedAll = false;
  private readonly emit: (e: FlattenerEvent) => void;

  constructor(opts: FlattenerOptions) {
    this.opts = opts;
    const logger = opts.logger;
    this.emit = (e) => {
      try {
        logger?.(e);
      } catch {
        // A throwing logger does not stop the flattener.
      }
    };
  }

  private connect(): Promise<CephCluster> {
    if (!this.session) {
      const s = this.opts.source;
      const p = CephCluster.connect({ confPath: s.confPath, user: s.user, ...(s.keyring ? { keyring: s.keyring } : {}), timeoutMs: s.connectTimeoutMs });
      p.catch(() => {
        if (this.session === p) this.session = null;
      });
      this.session = p;
    }
    return this.session;
  }

  /** ceph-mgr's queue as the store's user sees it, when that user is configured and can connect. */
  private async mgr(): Promise<MgrView | undefined> {
    const u = this.opts.storeUser;
    if (!u) return undefined;
    if (!this.storeSession) {
      const p = CephCluster.connect({ confPath: u.confPath, user: u.user, ...(u.keyring ? { keyring: u.keyring } : {}), timeoutMs: u.connectTimeoutMs });
      p.catch(() => {
        if (this.storeSession === p) this.storeSession = null;
      });
      this.storeSession = p;
    }
    const session = await this.storeSession.catch(() => null);
    return session ? mgrView(session) : undefined;
  }

  /**
   * Images in the target pool waiting for their flatten, oldest request first: one read of the pool's
   * journal, then only the queued clones are opened (flatten-queue.ts); `scanImages` scans the whole pool once.
   */
  async pending(): Promise<QueuedFlatten[]> {
    const session = await this.connect();
    const only = this.opts.images;
    const scanAll = this.opts.scanImages === true && !this.scannedAll;
    const found = await pendingFlattens(await session.pool(this.opts.target.pool), { scanAll });
    if (scanAll) this.scannedAll = true;
    return found.filter((p) => !only || only.includes(p.image));
  }

  /** Where each pending flatten stands (ceph-mgr's task list as the store's user, see flatten-status.ts). */
  async status(): Promise<FlattenStatus> {
    const session = await this.connect();
    const mgr = await this.mgr();
    const queue = mgr ? await mgr.queue() : { error: 'no image store user configured to read ceph-mgr\'s queue with' };
    return flattenStatus(await session.pool(this.opts.target.pool), await this.pending(), queue);
  }

  /** Flattens everything pending now, one image at a time; `signal` stops it (the current image stays queued). */
  async runOnce(opts: { signal?: AbortSignal } = {}): Promise<FlattenReport> {
    const session = await this.connect();
    const io = await session.pool(this.opts.target.pool);
    const report: FlattenReport = { flattened: [], skipped: [], failed: [] };
    const mgr = await this.mgr();
    // Images named on purpose that are linked snapshots (flatten: never) are detached on demand.
    for (const name of this.opts.images ?? []) await queueLinkedFlatten(session, io, name);
    for (const { image } of await this.pending()) {
      if (opts.signal?.aborted) break;
      const started = performance.now();
      this.emit({ type: 'flatten', image, state: 'start' });
      try {
        const outcome = await flattenImage(session, io, image, {
          staleLockMs: this.opts.staleLockMs ?? DEFAULT_STALE_LOCK_MS,
          ...(opts.signal ? { signal: opts.signal } : {}),
          ...(mgr ? { mgr } : {}),
          emit: this.emit,
        });
        const ms = performance.now() - started;
        if (outcome.state === 'done') {
          report.flattened.push(image);
          this.emit({ type: 'flatten', image, state: 'done', ms });
        } else {
          report.skipped.push({ image, why: outcome.why });
          this.emit({ type: 'flatten', image, state: 'skipped', why: outcome.why });
        }
      } catch (err) {
        if (opts.signal?.aborted) {
          this.emit({ type: 'flatten', image, state: 'cancelled' });
          break;
        }
        report.failed.push({ image, error: errorText(err) });
        this.emit({ type: 'flatten', image, state: 'failed', why: errorText(err) });
        // Blocklisted (a peer took over its lease) or cut off: this connection is dead; the next poll makes a new one.
        if (hasCode(err, 'CONNECTION', 'LEASE_LOST')) {
          await this.close();
          break;
        }
      }
    }
    return report;
  }

  /** Keeps flattening what appears, polling every `pollMs`, until `signal` aborts. */
  async run(opts: { signal: AbortSignal }): Promise<void> {
    const pollMs = this.opts.pollMs ?? DEFAULT_POLL_MS;
    while (!opts.signal.aborted) {
      try {
        await this.runOnce(opts);
      } catch (err) {
        // A failed listing (a monitor election, a timeout) is retried at the next poll.
        this.emit({ type: 'flatten', image: '*', state: 'failed', why: errorText(err) });
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, pollMs);
        function done() {
          clearTimeout(timer);
          opts.signal.removeEventListener('abort', done);
          resolve();
        }
        opts.signal.addEventListener('abort', done, { once: true });
      });
    }
  }

  /** Releases the connection (after runOnce/run have returned). Safe to call twice. */
  async close(): Promise<void> {
    const sessions = [this.session, this.storeSession];
    this.session = null;
    this.storeSession = null;
    await Promise.all(sessions.map(async (s) => (s ? (await s.catch(() => null))?.close() : undefined)));
  }
}
