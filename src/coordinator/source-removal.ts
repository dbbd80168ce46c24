// prepareSourceRemoval: before an instance disk is removed, the instant snapshots still hanging from it
// (their clones' parent is the disk's trashed snapshot) must be flattened. With `flattenFirst` their
// flattens are handed to ceph-mgr's task queue when it takes them (mgr-flatten.ts) — the ones not queued
// there yet are queued, and the call waits for the tasks — and flattened here otherwise.
import type { CephCluster, Ioctx } from '../ceph/index.js';
import { errorText } from './events.js';
import { DEFAULT_STALE_LOCK_MS, flattenImage, mgrView, type FlattenerEvent, type MgrView } from './flattener.js';
import { FLATTEN_KEY, SourceInUseError, diskSource, encodeFlattenRequest, removeUnusedTrashedSnapshots, type FlattenRequest } from './instant.js';
import { pendingFlattens } from './flatten-queue.js';
import { TRASH_OPTION, linkedDependants, movesParentToTrash } from './linked.js';
import { queueMgrFlatten, taskState } from './mgr-flatten.js';
import { removeCommonPoints } from './incremental/pairing.js';
import { withImage } from './rbd-util.js';
import { isRbdSource } from './source-kind.js';
import type { Source } from './source.js';

export interface SourceRemovalReport {
  /** The disk, as `rbd://fsid/pool/image`. */
  source: string;
  /** The snapstore images flattened so that the disk could go (by ceph-mgr or here). */
  flattened: string[];
  /** Trashed snapstore snapshots of the disk that no clone used any more, removed. */
  removedTrashedSnapshots: number;
  /** The disk's common points (incremental snapshots, any target store) removed with their pairings. */
  removedCommonPoints: string[];
  /**
   * Linked snapshots (`flatten: 'never'`) of the disk: they stay clones of it, and need nothing here when
   * the deleting client has rbd_move_parent_to_trash_on_remove (the disk moves to the RBD trash, and
   * librbd — or `snapstore gc` — removes it with its last linked image).
   */
  linked: string[];
}

export interface SourceRemovalOptions {
  flattenFirst?: boolean;
  signal?: AbortSignal;
  staleLockMs?: number;
  logger?: (e: FlattenerEvent) => void;
  /** The image store's user, to queue flattens with ceph-mgr and follow its tasks; without it they are flattened here. */
  mgrSession?: CephCluster | null;
}

const POLL_MS = 1000;

/**
 * Refuses (IN_USE) while snapstore images in `targetPool` still depend on the disk, or with `flattenFirst`
 * gets them flattened (waiting for the mgr's tasks, or for a live flattener that already works on one),
 * then removes trashed snapstore snapshots nothing uses.
 */
export async function prepareSourceRemoval(session: CephCluster, targetPool: string, src: Source, opts: SourceRemovalOptions): Promise<SourceRemovalReport> {
  const source = diskSource(src, session.fsid);
  const io = await session.pool(targetPool);
  const flattened = new Set<string>();
  const mgr = opts.mgrSession ? mgrView(opts.mgrSession, 0) : undefined;
  for (;;) {
    const dependents = (await pendingFlattens(io)).filter((p) => p.request.source === source);
    if (dependents.length === 0) break;
    const names = dependents.map((d) => d.image);
    if (!opts.flattenFirst) {
      throw new SourceInUseError(
        `${source} is in use: ${names.length} snapstore image(s) in pool ${targetPool} still depend on it (not flattened yet): ${names.join(', ')}; ` +
          'flatten them first (snapstore flattener --once, or prepareSourceRemoval with flattenFirst)',
        { source, clones: names },
      );
    }
    if (opts.mgrSession && mgr) await queueMissing(opts.mgrSession, io, dependents, mgr);
    const progressed = await flattenRound(session, io, dependents, source, names, { ...opts, ...(mgr ? { mgr } : {}) }, flattened);
    if (!progressed) {
      opts.signal?.throwIfAborted();
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }
  const linked = isRbdSource(src) ? await linkedDependants(io, src.pool, src.image, flattened) : [];
  if (linked.length > 0 && !movesParentToTrash(session)) {
    throw new SourceInUseError(
      `${source} is in use: ${linked.length} linked snapshot(s) in pool ${targetPool} are clones of it (${linked.join(', ')}), and client.${session.user} ` +
        `would fail to delete it: set "${TRASH_OPTION} = true" in its ceph.conf section (then deleting it moves it to the RBD trash), or flatten them (snapstore flattener)`,
      { source, clones: linked },
    );
  }
  const removedTrashedSnapshots = isRbdSource(src) ? await removeUnusedTrashedSnapshots(await session.pool(src.pool), src.image) : 0;
  const removedCommonPoints = isRbdSource(src) ? await removeCommonPoints(await session.pool(src.pool), src.image) : [];
  return { source, flattened: [...flattened], removedTrashedSnapshots, removedCommonPoints, linked };
}

/** Queues with the mgr the dependents it does not have (never queued, or its task gone); a refusal leaves them to flattenRound. */
async function queueMissing(mgrSession: CephCluster, io: Ioctx, dependents: Array<{ image: string; request: FlattenRequest }>, mgr: MgrView): Promise<void> {
  const queue = await mgr.queue();
  if (!('tasks' in queue)) return;
  for (const d of dependents) {
    if (d.request.mgrTask && taskState(queue.tasks, d.request.mgrTask.id).state !== 'gone') continue;
    const outcome = await queueMgrFlatten(mgrSession, io.pool, d.image, '');
    if (outcome.via !== 'mgr') return;
    const recorded: FlattenRequest = { ...d.request, mgrTask: { id: outcome.taskId, queuedAt: new Date().toISOString() } };
    await withImage(io, d.image, {}, undefined, (image) => image.metadataSet(FLATTEN_KEY, encodeFlattenRequest(recorded))).catch(() => {});
  }
}

/** One pass over the dependents; true when one of them was finished. */
async function flattenRound(
  session: CephCluster,
  io: Ioctx,
  dependents: Array<{ image: string }>,
  source: string,
  names: string[],
  opts: SourceRemovalOptions & { mgr?: MgrView },
  flattened: Set<string>,
): Promise<boolean> {
  let progressed = false;
  for (const d of dependents) {
    const outcome = await flattenImage(session, io, d.image, {
      staleLockMs: opts.staleLockMs ?? DEFAULT_STALE_LOCK_MS,
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.mgr ? { mgr: opts.mgr } : {}),
      emit: opts.logger ?? (() => {}),
    }).catch((err: unknown) => {
      throw new SourceInUseError(`${source} is in use: flattening ${d.image} failed (${errorText(err)})`, { source, clones: names });
    });
    if (outcome.state === 'done') {
      flattened.add(d.image);
      progressed = true;
    } else if (!outcome.why.startsWith('being flattened by') && outcome.why !== 'the image is gone' && outcome.why !== 'flattened meanwhile') {
      throw new SourceInUseError(`${source} is in use: ${d.image} cannot be flattened now (${outcome.why})`, { source, clones: names });
    }
  }
  return progressed;
}
