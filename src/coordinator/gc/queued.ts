// Instant snapshots whose flatten is queued (`snapstore.flatten`, with or without a ceph-mgr task): finished
// snapshots with pending work, never leftovers. gc reports them as kept, saying who flattens them, so an
// operator reading gc's output sees the work in flight rather than wondering about clones of the disks.
import { pendingFlattens } from '../flatten-queue.js';
import { clonePool } from './removals.js';
import { toLeftover, type Scan } from './scan.js';

export async function scanQueued(scan: Scan): Promise<void> {
  const where = (await scan.store.clones?.where()) ?? null;
  const io = await clonePool(scan.source, where);
  if (!io || !where) return;
  for (const { image, request } of await pendingFlattens(io, { scanAll: scan.scanImages })) {
    const leftover = toLeftover('clone', `rbd://${where.fsid}/${where.pool}/${image}`, request.runId, null, Date.parse(request.requestedAt));
    const why = request.mgrTask
      ? `pending work, not a leftover: its flatten is queued with ceph-mgr (task ${request.mgrTask.id})`
      : 'pending work, not a leftover: its flatten waits for `snapstore flattener`';
    scan.ctx.emit({ type: 'gc', action: 'kept', leftover, why });
  }
}
