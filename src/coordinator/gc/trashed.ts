// Trashed `snapstore-<uuid>` snapshots on source images (an instant snapshot's source, see instant.ts):
// leftovers only when no clone uses them any more, which only trying to remove them tells.
import { errorText } from '../events.js';
import { removeUnusedTrashedSnapshots } from '../instant.js';
import type { Leftover } from '../types.js';
import type { Scan } from './scan.js';

/** Removes the unused ones among the trashed snapshots the source scan found; returns those removed. */
export async function removeTrashed(scan: Scan): Promise<Leftover[]> {
  const removed: Leftover[] = [];
  for (const t of scan.trashed) {
    try {
      if ((await removeUnusedTrashedSnapshots(t.io, t.image, t.snap)) === 0) continue;
      removed.push(t.leftover);
      scan.ctx.emit({ type: 'gc', action: 'removed', leftover: t.leftover });
    } catch (err) {
      scan.ctx.emit({ type: 'gc', action: 'failed', leftover: t.leftover, why: errorText(err) });
    }
  }
  return removed;
}
