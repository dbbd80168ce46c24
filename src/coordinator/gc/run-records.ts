// The source pool: run records of killed runs (and what each lists), and `snapstore-<uuid>` snapshots no
// record accounts for. Trashed snapstore snapshots are noted for trashed.ts.
import type { SnapInfo } from 'ceph-rbd-napi';
import type { Ioctx } from '../../ceph/index.js';
import { RUN_KEY_PREFIX, decodeRunRecord, runIdOfSnap, runKey, type RunRecord } from '../names.js';
import { ignoreNotFound } from '../rbd-util.js';
import type { Leftover } from '../types.js';
import { glanceRemoval } from './glance-images.js';
import { removeSourceSnapshot } from './removals.js';
import { targetRemoval } from './run-targets.js';
import { readImage, toLeftover, type Removal, type Scan } from './scan.js';

export async function scanSourcePool(scan: Scan): Promise<void> {
  const session = scan.source;
  const config = scan.ctx.source?.config;
  if (!session || !config) return;
  const io = await session.pool(config.pool);
  for (const name of await io.listImages()) {
    // Snapshots first: a run writes its record before its snapshot, so every snapshot of a run still going
    // on is matched by a record read after it.
    const info = await readImage(scan.ctx, io, name, async (image) => {
      const snaps = await image.snapList();
      return { snaps, meta: await image.metadataList() };
    });
    if (!info) continue;
    const where = `rbd://${session.fsid}/${config.pool}/${name}`;
    const recorded = await scanRecords(scan, io, name, where, info.meta);
    scanSnapshots(scan, io, name, where, info.snaps, recorded);
  }
}

/** The run records on one image; returns the source snapshots they account for. */
async function scanRecords(scan: Scan, io: Ioctx, name: string, where: string, meta: Record<string, string>): Promise<Set<string>> {
  const recorded = new Set<string>();
  for (const [key, value] of Object.entries(meta)) {
    if (!key.startsWith(RUN_KEY_PREFIX)) continue;
    const record = decodeRunRecord(value);
    if (!record || runKey(record.runId) !== key) continue;
    if (record.sourceSnap) recorded.add(record.sourceSnap);
    const leftover = toLeftover('run-record', `${where}#${key}`, record.runId, record.owner, Date.parse(record.startedAt));
    if (scan.qualifies(leftover, record.abandoned ? null : record.owner)) scan.add(await runRemovals(scan, { io, image: name }, record));
  }
  return recorded;
}

function scanSnapshots(scan: Scan, io: Ioctx, name: string, where: string, snaps: SnapInfo[], recorded: Set<string>): void {
  for (const snap of snaps) {
    // A trashed snapstore snapshot is an instant snapshot's source: kept while a clone uses it (librbd
    // refuses its removal then), and normally removed by librbd with its last clone — but not when a user
    // who may not write this pool (Glance's) removed the clone. Only an unused one can be removed.
    const original = snap.namespace === 'trash' ? snap.originalName : undefined;
    const trashedRun = original ? runIdOfSnap(original) : null;
    if (original && trashedRun && snap.timestamp && scan.now - snap.timestamp.getTime() >= scan.olderThanMs) {
      const leftover = toLeftover('source-snapshot', `${where}/${original}`, trashedRun, null, snap.timestamp.getTime());
      scan.trashed.push({ io, image: name, snap: original, leftover });
    }
    const runId = runIdOfSnap(snap.name);
    if (snap.namespace !== 'user' || !runId || recorded.has(snap.name)) continue;
    const leftover = toLeftover('source-snapshot', `${where}/${snap.name}`, runId, null, snap.timestamp?.getTime() ?? null);
    if (scan.qualifies(leftover, null)) scan.add([{ leftover, remove: () => removeSourceSnapshot(io, name, snap.name) }]);
  }
}

/**
 * The removals a stale run record stands for, in order; the record goes last (then `after`: its journal
 * entry), and only when everything it lists could be reached (else a gc with the right configuration can
 * still find the rest through it). `disk`: the source image the record is on (null: a file source's run,
 * known from its journal entry only).
 */
export async function runRemovals(scan: Scan, disk: { io: Ioctx; image: string } | null, record: RunRecord, after: Removal[] = []): Promise<Removal[]> {
  const out: Removal[] = [];
  const started = Date.parse(record.startedAt);
  const leftover = (kind: Leftover['kind'], location: string) => toLeftover(kind, location, record.runId, record.owner, started);
  let complete = true;
  const targetLeftover = leftover(record.method === 'direct' ? 'clone' : 'target', record.target);
  const target = await targetRemoval(scan, record);
  const registered = target !== null && 'registered' in target;
  const glance = scan.ctx.glance;
  const made = record.glance?.created ? record.glance.id : null;
  // A registered image's Glance image is the run's result, not a leftover.
  if (made !== null && !glance) complete = false;
  else if (made !== null && glance && !registered) out.push(glanceRemoval(glance, made, record.runId, leftover('glance-image', `glance:${made}`)));
  let finish: (() => Promise<void>) | null = null;
  if (target && 'registered' in target) {
    // The run got as far as Glance: its image stands. Only its bookkeeping goes: the mark, with the record.
    scan.ctx.emit({ type: 'gc', action: 'kept', leftover: targetLeftover, why: target.registered });
    // Not to be discarded for its mark by the pending-targets scan either.
    scan.claim(targetLeftover.location);
    finish = target.finish;
  } else if (target) {
    out.push({ leftover: targetLeftover, remove: target.remove });
  } else if (!record.target.startsWith('glance:')) {
    complete = false;
  }
  if (record.sourceSnap && disk) {
    const snap = record.sourceSnap;
    out.push({ leftover: leftover('source-snapshot', `${record.source}/${snap}`), remove: () => removeSourceSnapshot(disk.io, disk.image, snap) });
  }
  const recordLeftover = leftover('run-record', `${record.source}#${runKey(record.runId)}`);
  if (!complete) {
    scan.ctx.emit({ type: 'gc', action: 'kept', leftover: recordLeftover, why: `${record.target} is not reachable with this configuration` });
    return out;
  }
  const bookkeeping = disk ? [{ leftover: recordLeftover, remove: () => removeRecord(disk.io, disk.image, record.runId) }, ...after] : after;
  const first = bookkeeping[0];
  if (finish && first) {
    const unmark = finish;
    bookkeeping[0] = {
      leftover: first.leftover,
      remove: async () => {
        await unmark();
        await first.remove();
      },
    };
  }
  out.push(...bookkeeping);
  return out;
}

async function removeRecord(io: Ioctx, image: string, runId: string): Promise<void> {
  const handle = await io.openImage(image);
  try {
    await ignoreNotFound(handle.metadataRemove(runKey(runId)));
  } finally {
    await handle.close();
  }
}
