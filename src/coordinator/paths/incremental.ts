// The copy path with incremental snapshots on (SnapshotOptions.incremental). The disk's own snapshot is
// taken as the next common point (`snapstore-cp-<runId>`). When the disk's pairing with this store holds
// (incremental/pairing.ts), the new image is made from the previous one inside the target (the store's
// IncrementalTarget: a clone of its `snap`, flattened inside the target before the changes go in — by
// ceph-mgr where it takes the task, see target-flatten.ts — or, with `flatten: 'background'`, left a clone
// with its flatten queued like an instant snapshot's: see background.ts) and only what changed between
// the two snapshots is read and written; otherwise it is a full copy (copy.ts's copy step). Either way the
// image records the snapshot it holds, the disk records the pairing, and once the image is registered the
// disk keeps only the newest common points for this store.
import type { Image } from '../../ceph/index.js';
import { InternalError } from '../../errors.js';
import type { IncrementalTarget, Store } from '../../store.js';
import type { Assessment, PathResult, RbdAssessment, RunContext, Sink } from '../context.js';
import { errorText } from '../events.js';
import { readPlan } from '../extents.js';
import { applyChanges, changedExtents, type ChangeSummary } from '../incremental/changes.js';
import { encodeBaseRecord, pairKey, pruneCommonPoints, verifyPairing, type Pairing } from '../incremental/pairing.js';
import { commonPointName, encodeMark, pendingMarker } from '../names.js';
import { ignoreNotFound } from '../rbd-util.js';
import type { SnapshotOptions } from '../types.js';
import { INSTANT_CLONE_FEATURES, type FlattenRequest } from '../instant.js';
import { dequeueFlatten, queueFlattenRequest } from '../flatten-queue.js';
import { queueFlatten } from './background.js';
import { flattenInTarget, type HeldImage } from './target-flatten.js';
import { copyData, register } from './copy.js';
import { createGlanceImage } from './glance.js';
import { recordRun, takeSourceSnapshot, unrecordRun, type SourceRun } from './source-run.js';
import { targetText } from './target.js';

/** Whether a copy is to be incremental: asked for, of a disk (not an existing snapshot), into the store. */
export function incrementalAsked(a: Assessment, sink: Sink, opts: Pick<SnapshotOptions, 'incremental'>): boolean {
  return opts.incremental === true && sink === 'store' && a.disk && a.src.snap === null;
}

/** The store's IncrementalTarget when this copy is to be incremental (incrementalAsked, and the store can). */
export function incrementalTarget(store: Store, a: Assessment, sink: Sink, opts: SnapshotOptions): IncrementalTarget | null {
  return incrementalAsked(a, sink, opts) ? (store.incremental ?? null) : null;
}

/** What the data step made: where, how big, and (incremental) from what. */
interface Made {
  location: string;
  sizeBytes: number;
  checksums: PathResult['checksums'];
  changes: (ChangeSummary & { from: string }) | null;
  /** Background: the new image, still open, and its queued flatten request (to hand to ceph-mgr once registered). */
  later?: { image: Image; request: FlattenRequest };
}

/**
 * `later`: a new image made from the previous one is left unflattened, queued for a background flatten (a
 * full copy is complete anyway).
 */
export async function incremental(ctx: RunContext, a: RbdAssessment, inc: IncrementalTarget, keep: number, later = false): Promise<PathResult> {
  const { r, imageId, store } = ctx;
  const identity = await inc.identity();
  const s = await recordRun(ctx, a, 'copy', await targetText(store, imageId, 'store'), commonPointName(r.runId));
  await createGlanceImage(ctx, ctx.opts.name ?? `${a.src.image} snapshot`);
  const verdict = await r.step('pairing', async () => verifyPairing(await s.handle.get(), a.canonical, inc));
  await takeSourceSnapshot(ctx, a, s);
  const snapId = await snapIdOf(await s.handle.get(), s.snapName);
  await s.handle.close();

  const marker = encodeMark(pendingMarker(r.runId, 'copy', a.canonical, s.snapName));
  const record = encodeBaseRecord(a.canonical, s.snapName, snapId);
  const made = verdict?.ok
    ? await fromPrevious(ctx, a, s, inc, verdict.pairing, { marker, record }, later ? identity : null)
    : await fullCopy(ctx, a, s, inc, { marker, record });
  const pairing: Pairing = { v: 1, snap: s.snapName, snapId, target: identity, imageId, at: new Date().toISOString() };
  await pair(ctx, s, pairing);
  const { glance, location } = await register(ctx, a, 'store', { location: made.location, sizeBytes: made.sizeBytes, checksums: made.checksums }, marker);
  // The mark comes off only once Glance holds the location (as in copy.ts): gc keeps a registered image.
  await r.step('unmark-target', () => store.clearPending(imageId));
  // Registered: the snapshot and its pairing are the disk's common point now, whatever happens next.
  s.snapUndo?.release();
  await unrecordRun(ctx, s);
  await prune(ctx, s, identity, keep);
  // The snapshot is complete here: queueing its flatten with the mgr only chooses who flattens (as direct.ts).
  const bg = made.later;
  const queued = bg ? await queueFlatten(ctx, bg.image, bg.request, `profile rbd pool=${bg.image.ioctx.pool}`) : undefined;
  return {
    imageId: glance?.id ?? imageId,
    ...(queued ? { queued } : {}),
    location,
    sizeBytes: made.sizeBytes,
    glance,
    checksums: made.checksums,
    incremental: made.changes ? { from: made.changes.from, bytesSent: made.changes.bytesSent } : null,
    ...(verdict && !verdict.ok ? { fullReason: `full copy: ${verdict.reason}` } : {}),
    commonPoint: `${a.canonical}/${s.snapName}`,
  };
}

async function snapIdOf(disk: Image, snap: string): Promise<string> {
  const found = (await disk.snapList()).find((x) => x.namespace === 'user' && x.name === snap);
  if (!found) throw new InternalError(`snapshot ${snap} is not listed right after it was taken`);
  return String(found.id);
}

/**
 * The new image made from the previous one, and what changed since its snapshot written into it; flattened,
 * or (`laterIn`: the store's identity) queued for a background flatten with a request naming the previous image.
 */
async function fromPrevious(
  ctx: RunContext,
  a: RbdAssessment,
  s: SourceRun,
  inc: IncrementalTarget,
  prev: Pairing,
  texts: { marker: string; record: string },
  laterIn: string | null,
): Promise<Made> {
  const { r, imageId, store } = ctx;
  let reader: Image | null = null;
  r.always('close snapshot reader', async () => {
    await reader?.close();
  });
  r.undo(`discard ${imageId}`, async () => {
    await store.discard(imageId);
  });
  const { opened, image: derived, sizeBytes } = await r.step('derive', async () => {
    const opened = await s.io.openImage(a.src.image, { readOnly: true, snapshot: s.snapName });
    reader = opened;
    const sizeBytes = await opened.size();
    const features = laterIn ? { features: INSTANT_CLONE_FEATURES } : {};
    return { opened, sizeBytes, image: await inc.derive(prev.imageId, imageId, sizeBytes, texts.marker, features) };
  });
  const held: HeldImage = { image: derived };
  r.always('close the new image', async () => {
    await held.image?.close();
  });
  let image = derived;
  if (laterIn === null) {
    const pool = image.ioctx.pool;
    const { image: current, ...flattened } = await r.step('flatten-first', () =>
      flattenInTarget(ctx, held, `profile rbd pool=${pool}`, (done, total) => r.progress('flatten-first', 'flatten', done, total)),
    );
    image = current;
    ctx.svc.emit({ type: 'flattened', runId: r.runId, imageId, ...flattened });
  }
  const plan = readPlan((await opened.stat()).objectSize, Number(a.session.confGet('rbd_concurrent_management_ops')));
  const changes = await r.step('copy-changes', async () => {
    const extents = await changedExtents(opened, prev.snap);
    const progress = (done: number, total: number) => r.progress('copy-changes', 'copy', done, total);
    const objectBytes = (await image.stat()).objectSize;
    return applyChanges(opened, image, extents, { plan, objectBytes, progress, stop: () => r.stopReason() });
  });
  await r.step('record-base', () => inc.setRecord(imageId, texts.record, image));
  const location = await r.step('finish', () => inc.finish(imageId, image, { flatten: false }));
  const made = { location, sizeBytes, checksums: null, changes: { ...changes, from: prev.imageId } };
  if (laterIn === null) {
    held.image = null;
    await image.close();
    return made;
  }
  // Queued now, so that a kill from here on leaves a marked image gc removes; whoever flattens it first
  // does what would happen anyway. The image stays open (closed when the run ends) for the mgr's task id.
  const request: FlattenRequest = { v: 1, requestedAt: new Date().toISOString(), runId: r.runId, source: `${laterIn}/${prev.imageId}`, sourceSnap: null };
  // Undone before the image is discarded, so that not even the queue's index entry outlives a failed run.
  r.undo(`dequeue the flatten of ${imageId}`, () => dequeueFlatten(image));
  await r.step('queue-flatten', () => queueFlattenRequest(image, request));
  return { ...made, later: { image, request } };
}

/** A full copy (copy.ts's copy step), then the record of the snapshot it holds. */
async function fullCopy(ctx: RunContext, a: RbdAssessment, s: SourceRun, inc: IncrementalTarget, texts: { marker: string; record: string }): Promise<Made> {
  const copied = await copyData(ctx, { disk: true, a, s }, 'store', texts.marker);
  await ctx.r.step('record-base', () => inc.setRecord(ctx.imageId, texts.record));
  return { ...copied, changes: null };
}

/** Records the pairing on the disk (keyed by the snapshot's name: RBD metadata is per image). */
async function pair(ctx: RunContext, s: SourceRun, p: Pairing): Promise<void> {
  const key = pairKey(p.snap);
  ctx.r.undo(`remove pairing ${key}`, async () => ignoreNotFound((await s.handle.get()).metadataRemove(key)));
  await ctx.r.step('pair', async () => (await s.handle.get()).metadataSet(key, JSON.stringify(p)));
}

/** Removes the disk's older common points with this store; failing here does not fail the registered snapshot. */
async function prune(ctx: RunContext, s: SourceRun, identity: string, keep: number): Promise<void> {
  const { r } = ctx;
  try {
    const removed = await r.step('prune', async () => pruneCommonPoints(await s.handle.get(), identity, keep));
    for (const snap of removed) ctx.svc.emit({ type: 'common-point', runId: r.runId, state: 'removed', snap });
  } catch (err) {
    ctx.svc.emit({ type: 'common-point', runId: r.runId, state: 'kept', snap: null, why: `removing older common points failed: ${errorText(err)}` });
  } finally {
    await s.handle.close();
  }
}
