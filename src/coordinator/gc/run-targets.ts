// The target a stale run record names — removed only in the configured target pool or data directory, and
// only when the target proves it is that run's (its pending marker, a clone's parent snapshot, or an RBD
// image the store never finished): a record is data anyone allowed to write the source pool could forge.
import { basename, dirname, resolve } from 'node:path';
import type { Ioctx } from '../../ceph/index.js';
import { FLATTEN_KEY } from '../instant.js';
import { PENDING_KEY, TARGET_SNAP, decodePendingMarker, type RunRecord } from '../names.js';
import { withImage } from '../rbd-util.js';
import { removeFileTarget } from './pending-targets.js';
import { removeClone, sessionsFor, withSessions } from './removals.js';
import type { Scan } from './scan.js';

/** How to remove the run's target; null when this configuration cannot reach it. */
export function targetRemoval(scan: Scan, record: RunRecord): (() => Promise<void>) | null {
  const target = record.target;
  const config = scan.ctx.target;
  if (target.startsWith('rbd://')) {
    if (config.kind !== 'rbd') return null;
    const parts = target.slice('rbd://'.length).split('/').map(decodeURIComponent);
    if (parts.length !== 3 || parts[1] !== config.pool) return null;
    const [fsid, pool, name] = parts as [string, string, string];
    const reachable = sessionsFor(fsid, scan.sessions);
    if (reachable.length === 0) return null;
    return () =>
      withSessions(reachable, async (s) => {
        const io = await s.pool(pool);
        if (!(await provesRun(io, name, record))) {
          scan.ctx.emit({ type: 'gc-skipped', location: target, why: `not removed: nothing shows it belongs to run ${record.runId}` });
          return;
        }
        await removeClone(io, name, record.runId);
      });
  }
  if (target.startsWith('file://')) {
    if (config.kind !== 'file') return null;
    const path = decodeURI(target.slice('file://'.length));
    const dir = dirname(path);
    if (dir !== resolve(config.dataDir)) return null;
    return () => removeFileTarget(dir, basename(path), record.runId);
  }
  return null;
}

/** Whether the image in the target pool is the run's: its marker, its parent, or no `snap` (never finished). */
async function provesRun(io: Ioctx, name: string, record: RunRecord): Promise<boolean> {
  return withImage(io, name, { readOnly: true }, false, async (image) => {
    const marker = decodePendingMarker((await image.metadataGet(PENDING_KEY)) ?? '');
    if (marker) return marker.runId === record.runId;
    // A finished instant snapshot waiting for its flatten: the run completed; the record merely outlived it.
    if ((await image.metadataGet(FLATTEN_KEY)) !== null) return false;
    if (record.method === 'direct') return (await image.parentInfo())?.snapshot === record.sourceSnap && record.sourceSnap !== null;
    return !(await image.snapList()).some((s) => s.namespace === 'user' && s.name === TARGET_SNAP);
  });
}
