// Flattening a new image inside its own cluster, waited for: the incremental path's image made from the
// previous one is flattened before the changes go in, by ceph-mgr's task queue where it takes the task (the
// previous image's data is copied by the mgr, beside the OSDs, and never crosses to snapstore: between sites
// that is the whole image not sent twice over the link), else by librbd through snapstore's own connection,
// as `rbd flatten` would. Flattened first, the changes then overwrite plain objects: librbd copies nothing
// up on their way.
import type { Image } from '../../ceph/index.js';
import type { RunContext } from '../context.js';
import { NO_STORE_USER_REASON, cancelMgrTask, describeTaskState, listMgrTasks, queueMgrFlatten, taskState, whyNotMgr } from '../mgr-flatten.js';

/** How often the mgr's task list is read while waiting. */
const POLL_MS = 200;
/** A task still waiting behind others this long is taken back and flattened here: a sync snapshot does not queue behind background flattens. */
const QUEUED_LIMIT_MS = 10_000;
/** The mgr unanswering this many polls in a row: the flatten is taken back. */
const SILENT_POLLS = 5;

export interface TargetFlatten {
  via: 'mgr' | 'snapstore';
  /** Why snapstore flattened it itself (the mgr refused, was silent, failed or was busy). */
  why?: string;
}

/** The new image's handle, which the flatten may close and open again (the caller closes what is here at the end). */
export interface HeldImage {
  image: Image | null;
}

/**
 * Flattens the image held in `held` (`ctx.imageId`, open read-write) inside its cluster and waits for it:
 * ceph-mgr first, as the store's user, else here. `onProgress(done, total)` in bytes of the image; false
 * stops it (the mgr's task cancelled). A failure of the mgr's flatten is not the snapshot's: it is
 * flattened here instead. Cancelling cancels the mgr's task. Returns the handle to go on with (also in
 * `held`).
 *
 * While the mgr flattens, snapstore's handle is closed: librbd hands a maintenance operation to the
 * client that holds the image's exclusive lock, and this handle took it when it wrote the image's
 * metadata — the mgr's flatten would otherwise run here, through this host (seen between sites: the
 * whole image over the link, twice).
 */
export async function flattenInTarget(ctx: RunContext, held: HeldImage, osdCaps: string, onProgress: (done: number, total: number) => boolean): Promise<TargetFlatten & { image: Image }> {
  const { svc, imageId, opts } = ctx;
  const signal = opts.signal;
  const image = held.image;
  if (image === null) throw new Error(`${imageId} is not open`);
  const io = image.ioctx;
  const size = await image.size();
  let why: string;
  const session = await svc.storeUserSession().catch(() => null);
  if (session === null) {
    why = NO_STORE_USER_REASON;
  } else {
    held.image = null;
    await image.close();
    const queued = await queueMgrFlatten(session, io.pool, imageId, osdCaps);
    if (queued.via === 'mgr') {
      // Whatever goes wrong while waiting, the task is cancelled first: the run's undo must be able to remove the image.
      const waited = await waitForMgr(session, queued.taskId, size, () => isClone(io, imageId), signal, onProgress).catch(async (err: unknown) => {
        await cancelMgrTask(session, queued.taskId).catch(() => {});
        throw err;
      });
      if (waited === null) return { via: 'mgr', image: await reopen(held, io, imageId) };
      why = waited;
    } else {
      why = whyNotMgr(queued.reason);
    }
  }
  const current = held.image ?? (await reopen(held, io, imageId));
  await current.flatten({ ...(signal ? { signal } : {}), onProgress });
  return { via: 'snapstore', why, image: current };
}

async function reopen(held: HeldImage, io: Image['ioctx'], name: string): Promise<Image> {
  const image = await io.openImage(name);
  held.image = image;
  return image;
}

async function isClone(io: Image['ioctx'], name: string): Promise<boolean> {
  const probe = await io.openImage(name, { readOnly: true });
  try {
    return (await probe.stat()).parent !== null;
  } finally {
    await probe.close();
  }
}

/** Null once the mgr flattened the image; otherwise why it was taken back (its task cancelled first). */
async function waitForMgr(
  session: Parameters<typeof cancelMgrTask>[0],
  taskId: string,
  size: number,
  stillClone: () => Promise<boolean>,
  signal: AbortSignal | undefined,
  onProgress: (done: number, total: number) => boolean,
): Promise<string | null> {
  const queuedSince = Date.now();
  let silent = 0;
  const takeBack = async (why: string) => {
    await cancelMgrTask(session, taskId).catch(() => {});
    return why;
  };
  for (;;) {
    if (signal?.aborted) throw signal.reason;
    const list = await listMgrTasks(session);
    if ('error' in list) {
      if (++silent >= SILENT_POLLS) return takeBack(`ceph-mgr stopped answering while it flattened the image (${list.error})`);
    } else {
      silent = 0;
      const state = taskState(list.tasks, taskId);
      if (state.state === 'gone') {
        // The task ends when the flatten does (or when someone cancelled it): the image says which.
        if (await stillClone()) return `ceph-mgr's flatten task ended with the image still a clone`;
        onProgress(size, size);
        return null;
      }
      if (state.state === 'failed') return takeBack(`ceph-mgr's flatten ${describeTaskState(state)}`);
      if (state.state === 'running' && !onProgress(Math.round(state.progress * size), size)) throw new Error('the flatten was stopped');
      if (state.state === 'queued' && Date.now() - queuedSince > QUEUED_LIMIT_MS) {
        return takeBack(`ceph-mgr's task queue did not start the flatten within ${QUEUED_LIMIT_MS / 1000} s (other tasks ahead of it)`);
      }
    }
    await sleep(POLL_MS, signal);
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
