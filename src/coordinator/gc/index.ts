// gc: finds what killed runs left behind and removes it — only things snapstore provably made. Each kind
// of leftover has its scanner:
//  - run-records.ts: run records (`snapstore.run.<uuid>` metadata on source images) and what a record lists
//    — the source snapshot, the target (run-targets.ts: only an image of the configured store) and the
//    Glance image (glance-images.ts; only when it carries the run's `snapstore_run` property) — and
//    `snapstore-<uuid>` snapshots on source images;
//  - pending-targets.ts: images the target store lists as pending (Store.listPending), removed with
//    Store.discard;
//  - probes.ts: `snapstore-probe-<uuidv7>` scratch images where the store keeps clones;
//  - trashed.ts: trashed `snapstore-<uuid>` snapshots no clone uses any more (instant snapshots).
// Clones queued for a background flatten (`snapstore.flatten`, no pending marker; queued.ts) are finished
// snapshots with pending work — with ceph-mgr's task queue or snapstore's flattener — reported as kept.
// A leftover qualifies when it is at least `olderThanMs` old and its owner is not a live process on this
// host (an owner on another host is judged by age alone).
import { errorText } from '../events.js';
import type { GcOptions, GcReport, Leftover } from '../types.js';
import { scanPendingTargets } from './pending-targets.js';
import { scanProbes } from './probes.js';
import { scanQueued } from './queued.js';
import { scanSourcePool } from './run-records.js';
import { Scan, type GcContext, type Removal } from './scan.js';
import { removeTrashed } from './trashed.js';

export type { GcContext } from './scan.js';

const DEFAULT_OLDER_THAN_MS = 60 * 60 * 1000;

export async function collectGarbage(ctx: GcContext, opts: GcOptions): Promise<GcReport> {
  const olderThanMs = opts.olderThanMs ?? DEFAULT_OLDER_THAN_MS;
  const dryRun = opts.dryRun ?? false;
  const [source, store] = await Promise.all([ctx.source?.session() ?? null, ctx.store()]);
  const scan = new Scan(ctx, source, store, Date.now(), olderThanMs);
  await scanSourcePool(scan);
  await scanPendingTargets(scan);
  await scanProbes(scan);
  await scanQueued(scan);

  const found = scan.groups.flat().map((r) => r.leftover);
  for (const leftover of found) ctx.emit({ type: 'gc', action: 'found', leftover });
  if (dryRun) return { found, removed: [], dryRun };
  const removed = await removeGroups(ctx, scan.groups);
  const trashed = await removeTrashed(scan);
  return { found: [...found, ...trashed], removed: [...removed, ...trashed], dryRun };
}

/** Removes each group in order, the groups in parallel; a failure keeps the rest of its group. */
async function removeGroups(ctx: GcContext, groups: Removal[][]): Promise<Leftover[]> {
  const removed: Leftover[] = [];
  await Promise.all(
    groups.map(async (group) => {
      for (const r of group) {
        try {
          await r.remove();
          removed.push(r.leftover);
          ctx.emit({ type: 'gc', action: 'removed', leftover: r.leftover });
        } catch (err) {
          ctx.emit({ type: 'gc', action: 'failed', leftover: r.leftover, why: errorText(err) });
          // What depends on it (the parent snapshot of a clone that stays, the record) stays too.
          break;
        }
      }
    }),
  );
  return removed;
}
