// gc: finds what killed runs left behind and removes it — only things snapstore provably made. Each kind
// of leftover has its scanner:
//  - journal-runs.ts: the runs the source pool's journal holds (one omap read) whose lease expired or whose
//    owner is provably dead, and what each lists (as a run record, below); the verdicts also decide for
//    every other scanner's leftovers of those runs;
//  - run-records.ts (only with `scanImages`: it opens every disk of the pool, for records of versions
//    before the journal): run records (`snapstore.run.<uuid>` metadata on source images) and what a record lists
//    — the source snapshot, the target (run-targets.ts: only an image of the configured store) and the
//    Glance image (glance-images.ts; only when it carries the run's `snapstore_run` property) — and
//    `snapstore-<uuid>` snapshots on source images;
//  - pending-targets.ts: images the target store lists as pending (Store.listPending), removed with
//    Store.discard;
//  - probes.ts: `snapstore-probe-<uuidv7>` scratch images where the store keeps clones;
//  - trashed.ts: trashed `snapstore-<uuid>` snapshots no clone uses any more (instant snapshots);
//  - trashed-parents.ts: disks in the RBD trash that linked snapshots kept and whose last one is gone.
//  - groups.ts (first): group snapshots whose lease ran out — their group snapshot and temporary group; a
//    committed group's disks are finished, not removed (journal-runs.ts leaves them to it).
// Clones queued for a background flatten (`snapstore.flatten`, no pending marker; queued.ts) are finished
// snapshots with pending work — with ceph-mgr's task queue or snapstore's flattener — reported as kept.
// A leftover of a run the journal holds qualifies by its lease (liveness.ts); any other when it is at least
// `olderThanMs` old and its owner is not a live process on this host (another host or PID namespace: by age).
import { errorText } from '../events.js';
import type { GcOptions, GcReport, Leftover } from '../types.js';
import { scanGroups } from './groups.js';
import { scanJournal } from './journal-runs.js';
import { scanPendingTargets } from './pending-targets.js';
import { scanProbes } from './probes.js';
import { scanQueued } from './queued.js';
import { scanSourcePool } from './run-records.js';
import { Scan, type GcContext, type Removal } from './scan.js';
import { removeTrashed } from './trashed.js';
import { scanTrashedParents } from './trashed-parents.js';

export type { GcContext } from './scan.js';

const DEFAULT_OLDER_THAN_MS = 60 * 60 * 1000;

export async function collectGarbage(outer: GcContext, opts: GcOptions): Promise<GcReport> {
  const olderThanMs = opts.olderThanMs ?? DEFAULT_OLDER_THAN_MS;
  const dryRun = opts.dryRun ?? false;
  // What gc did with each leftover, and why, as its events say it (the report's `seen`).
  const seen = new Map<string, GcReport['seen'][number]>();
  const ctx: GcContext = {
    ...outer,
    emit: (e) => {
      if (e.type === 'gc') {
        const action = e.action === 'found' ? 'would remove' : e.action;
        if (e.action !== 'found' || !seen.has(e.leftover.location)) seen.set(e.leftover.location, { ...e.leftover, action, why: e.why ?? null });
      }
      outer.emit(e);
    },
  };
  const [source, store] = await Promise.all([ctx.source?.session() ?? null, ctx.store()]);
  const scan = new Scan(ctx, source, store, Date.now(), olderThanMs, opts.scanImages ?? false);
  // The journal first: its leases decide for every leftover of the runs it holds, whatever scan finds it.
  await scanGroups(scan);
  await scanJournal(scan);
  if (opts.scanImages) await scanSourcePool(scan);
  await scanPendingTargets(scan);
  await scanProbes(scan);
  await scanQueued(scan);
  await scanTrashedParents(scan);

  const found = scan.groups.flat().map((r) => r.leftover);
  for (const leftover of found) ctx.emit({ type: 'gc', action: 'found', leftover });
  if (dryRun) return { found, removed: [], dryRun, seen: [...seen.values()] };
  const removed = await removeGroups(ctx, scan.groups);
  const trashed = await removeTrashed(scan);
  // A group stops at its first failure: what comes after it was found, not removed, and stays.
  for (const l of found) if (seen.get(l.location)?.action === 'would remove') seen.set(l.location, { ...l, action: 'kept', why: 'an earlier removal of its run failed' });
  return { found: [...found, ...trashed], removed: [...removed, ...trashed], dryRun, seen: [...seen.values()] };
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
