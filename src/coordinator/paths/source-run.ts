// The steps both paths take on an RBD source: open it and write the run record (see names.ts) before
// anything is created, take the source snapshot, remove it again once the target stands alone, and remove
// the record last.
import { loadNative, type Image, type Ioctx } from '../../ceph/index.js';
import type { RunContext, RbdAssessment } from '../context.js';
import { encodeMark, pendingMarker, runKey, sourceSnapName, type RunRecord } from '../names.js';
import { ignoreNotFound, removeSnapshot } from '../rbd-util.js';
import type { Lease } from '../journal/lease.js';
import { registerRun } from '../journal/register.js';
import type { UndoHandle } from '../steps.js';
import { SourceHandle } from './source-handle.js';

/** A run's hold on its RBD source. */
export interface SourceRun {
  io: Ioctx;
  handle: SourceHandle;
  /** The snapshot the run reads: its own `snapstore-<runId>`, or the existing one the source names. */
  snapName: string;
  /** Whether the run takes (and later removes) `snapName` itself. */
  ownSnap: boolean;
  /** A disk of a group snapshot: the snapshot's id (a group snapshot has no name an open could find). */
  snapId?: bigint;
  /** Undoes the snapshot the run took, until it is removed by the normal flow. */
  snapUndo: UndoHandle | null;
  /** The run's lease on its journal entry (none for a source opened read-only). */
  lease: Lease | null;
}

/**
 * Opens the source image and writes the run record on it; its removal is the run's last step. A source
 * opened read-only (an existing snapshot the user may only read) gets no record.
 */
export async function recordRun(ctx: RunContext, a: RbdAssessment, method: 'direct' | 'copy', target: string, ownSnapName?: string): Promise<SourceRun> {
  const { r } = ctx;
  const src = a.src;
  const ownSnap = src.snap === null;
  const snapName = src.snap ?? ownSnapName ?? sourceSnapName(r.runId);
  const io = await a.session.pool(src.pool);
  const handle = new SourceHandle(io, src.image, ownSnap);
  r.always('close source image', () => handle.close());
  const record: RunRecord = { ...pendingMarker(r.runId, method, a.canonical, ownSnap ? snapName : null), target, imageId: ctx.imageId, glance: ctx.glanceImage };
  const key = runKey(record.runId);
  let lease: Lease | null = null;
  await r.step('record', async () => {
    const image = await handle.open();
    if (handle.readOnly) return;
    // The journal entry first: gc and the flattener judge the run by its lease, renewed while it works.
    const held = await registerRun(a.session, io, record, ctx.svc.emit, ctx.leaseLost);
    lease = held;
    r.always('stop renewing the journal lease', async () => held.stop());
    r.undo(`remove journal entry of run ${record.runId}`, ({ failed }) => (failed ? held.abandon() : held.release()), { bookkeeping: true });
    // When removing something failed, the record stays (marked abandoned) so that gc can finish the job.
    r.undo(`remove run record ${key}`, async ({ failed }) => {
      const img = await handle.get();
      if (failed) await img.metadataSet(key, encodeMark({ ...record, abandoned: true }));
      else await ignoreNotFound(img.metadataRemove(key));
    }, { bookkeeping: true });
    await image.metadataSet(key, encodeMark(record));
  });
  return { io, handle, snapName, ownSnap, snapUndo: null, lease };
}

/** Opens the snapshot the run reads, read-only: by name, or by id when it is a group snapshot. */
export async function openSnapshotReader(s: SourceRun, image: string): Promise<Image> {
  if (s.snapId === undefined) return s.io.openImage(image, { readOnly: true, snapshot: s.snapName });
  const reader = await s.io.openImage(image, { readOnly: true });
  try {
    await (await loadNative()).snapSetById(reader, s.snapId);
  } catch (err) {
    await reader.close();
    throw err;
  }
  return reader;
}

/** Takes the run's own source snapshot (none when the source names an existing one). */
export async function takeSourceSnapshot(ctx: RunContext, a: RbdAssessment, s: SourceRun): Promise<void> {
  if (!s.ownSnap) return;
  const { handle, snapName } = s;
  s.snapUndo = ctx.r.undo(`remove snapshot ${a.src.pool}/${a.src.image}@${snapName}`, async () => removeSnapshot(await handle.get(), snapName));
  await ctx.r.step('snap-create', async () => (await handle.get()).snapCreate(snapName));
}

/** Removes the run's own source snapshot once nothing needs it (`unprotect` when the run protected it). */
export async function dropSourceSnapshot(ctx: RunContext, s: SourceRun, unprotect: boolean): Promise<void> {
  if (!s.ownSnap) return;
  const { handle, snapName } = s;
  if (unprotect) await ctx.r.step('snap-unprotect', async () => (await handle.get()).snapUnprotect(snapName));
  await ctx.r.step('snap-remove', async () => (await handle.get()).snapRemove(snapName));
  s.snapUndo?.release();
}

/**
 * Removes the run record: the snapshot is complete. Failing here does not fail it (Glance may already
 * point at the image); the record left behind names a target that no longer proves to be the run's, so gc
 * removes only the record.
 */
export async function unrecordRun(ctx: RunContext, s: SourceRun): Promise<void> {
  if (s.handle.readOnly) return;
  const { r } = ctx;
  const removed = await r.step('unrecord', async () => (await s.handle.get()).metadataRemove(runKey(r.runId))).then(
    () => true,
    () => false,
  );
  // The journal entry goes with the record; a record left behind leaves it abandoned, so gc (which reads
  // the journal, not every disk) removes the record at once. An entry left behind by a failed write runs
  // out of lease and gc then finds nothing of the finished run to remove but it and the record.
  await (removed ? s.lease?.release() : s.lease?.abandon())?.catch(() => {});
}
