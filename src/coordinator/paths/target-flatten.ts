// Flattening a new image inside its own cluster, waited for: the incremental path's image made from the
// previous one is flattened before the changes go in, by ceph-mgr's task queue where it takes the task (the
// previous image's data is copied by the mgr, beside the OSDs, and never crosses to snapstore: between sites
// that is the whole image not sent twice over the link), else by librbd through snapstore's own connection,
// as `rbd flatten` would. Flattened first, the changes then overwrite plain objects: librbd copies nothing
// up on their way.
import type { Image } from '../../ceph/index.js';
import type { RunContext } from '../context.js';
import { cancelMgrTask, describeTaskState, listMgrTasks, queueMgrFlatten, taskState } from '../mgr-flatten.js';

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

/**
 * Flattens `image` (`ctx.imageId`, open read-write) inside its cluster and waits for it: ceph-mgr first, as
 * the store's user, else here. `onProgress(done, total)` in bytes of the image; false stops it (the mgr's
 * task cancelled). A failure of the mgr's
 * flatten is not the snapshot's: it is flattened here instead. Cancelling cancels the mgr's task.
 */
export async function flattenInTarget(ctx: RunContext, image: Image, osdCaps: string, onProgress: (done: number, total: number) => boolean): Promise<TargetFlatten> {
  const { svc, imageId, opts } = ctx;
  const signal = opts.signal;
  let why: string;
  const session = await svc.storeUserSession().catch(() => null);
  if (session === null) {
    why = "the coordinator was given a Store object, not the store's Ceph user to ask ceph-mgr with";
  } else {
    const queued = await queueMgrFlatten(session, image.ioctx.pool, imageId, osdCaps);
    if (queued.via === 'mgr') {
      // Whatever goes wrong while waiting, the task is cancelled first: the run's undo must be able to remove the image.
      const waited = await waitForMgr(session, queued.taskId, image, signal, onProgress).catch(async (err: unknown) => {
        await cancelMgrTask(session, queued.taskId).catch(() => {});
        throw err;
      });
      if (waited === null) return { via: 'mgr' };
      why = waited;
    } else {
      why = queued.reason;
    }
  }
  await image.flatten({ ...(signal ? { signal } : {}), onProgress });
  return { via: 'snapstore', why };
}

/** Null once the mgr flattened the image; otherwise why it was taken back (its task cancelled first). */
async function waitForMgr(
  session: Parameters<typeof cancelMgrTask>[0],
  taskId: string,
  image: Image,
  signal: AbortSignal | undefined,
  onProgress: (done: number, total: number) => boolean,
): Promise<string | null> {
  const size = await image.size();
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
        const st = await image.stat();
        if (st.parent === null) {
          onProgress(size, size);
          return null;
        }
        return `ceph-mgr's flatten task ended with the image still a clone`;
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
