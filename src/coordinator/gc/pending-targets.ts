// Targets a killed run left unfinished: the images the target store lists as pending whose mark is one of
// snapstore's run markers (see names.ts); removed, with what the store keeps for them, by Store.discard.
import { decodePendingMarker } from '../names.js';
import { markedSource, removeSourceSnapshot } from './removals.js';
import { discardUnlessHeld } from './run-targets.js';
import { toLeftover, type Removal, type Scan } from './scan.js';

export async function scanPendingTargets(scan: Scan): Promise<void> {
  const store = scan.store;
  for (const entry of await store.listPending({ scanAll: scan.scanImages })) {
    const m = decodePendingMarker(entry.marker);
    if (!m) continue;
    const started = Date.parse(m.startedAt);
    const leftover = toLeftover(m.method === 'direct' ? 'clone' : 'target', entry.location, m.runId, m.owner, started);
    if (!scan.qualifies(leftover, m.owner)) continue;
    const group: Removal[] = [{ leftover, remove: () => discardUnlessHeld(scan, entry.imageId, entry.location) }];
    const src = markedSource(m.source, scan.source);
    const snap = m.sourceSnap;
    if (src && snap) {
      group.push({
        leftover: toLeftover('source-snapshot', `${m.source}/${snap}`, m.runId, m.owner, started),
        remove: async () => removeSourceSnapshot(await src.session.pool(src.pool), src.image, snap),
      });
    }
    scan.add(group);
  }
}
