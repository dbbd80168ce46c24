// Handing a finished, unflattened image to whoever flattens it in the background (the direct path's instant
// snapshots, and incremental snapshots made from the previous image): ceph-mgr's task queue when it takes
// the task from the store's user, snapstore's flattener otherwise (the request on the image stays for it).
import type { Image } from '../../ceph/index.js';
import type { PathResult, RunContext } from '../context.js';
import { FLATTEN_KEY, encodeFlattenRequest, type FlattenRequest } from '../instant.js';
import { FLATTENER_TAIL, NO_STORE_USER_REASON, queueMgrFlatten, type MgrQueueOutcome } from '../mgr-flatten.js';

/**
 * Hands the flatten of `clone` (image `ctx.imageId`, in the pool it was opened in) to ceph-mgr's task queue as the store's user
 * (mgr-flatten.ts) and records the task id in the queue entry; when the mgr refuses or is silent the entry
 * stays as it is, for snapstore's flattener. `osdCaps` is what the store's user needs, for the fix text.
 */
export async function queueFlatten(ctx: RunContext, clone: Image, request: FlattenRequest, osdCaps: string): Promise<PathResult['queued']> {
  const { r, imageId, svc } = ctx;
  const session = await svc.storeUserSession().catch(() => null);
  const outcome: MgrQueueOutcome = session
    ? await queueMgrFlatten(session, clone.ioctx.pool, imageId, osdCaps)
    : { via: 'flattener', code: 'NO_STORE_USER', reason: `${NO_STORE_USER_REASON}${FLATTENER_TAIL}` };
  if (outcome.via === 'flattener') {
    const { via, code, reason, fix } = outcome;
    svc.emit({ type: 'flatten-queued', runId: r.runId, imageId, via, code, reason, ...(fix ? { fix } : {}) });
    return { via, reason };
  }
  const recorded: FlattenRequest = { ...request, mgrTask: { id: outcome.taskId, queuedAt: new Date().toISOString() } };
  // Without the id the flatten still happens (the mgr has it); the flattener then finds the task by image.
  await clone.metadataSet(FLATTEN_KEY, encodeFlattenRequest(recorded)).catch(() => {});
  svc.emit({ type: 'flatten-queued', runId: r.runId, imageId, via: 'mgr', taskId: outcome.taskId });
  return { via: 'mgr', taskId: outcome.taskId };
}
