// The direct path: the data never leaves Ceph. A snapshot of the disk, a clone of it where the target store
// keeps clones (as the source user, who may read its parent), a flatten (or, for an instant snapshot, a
// flatten queued with ceph-mgr's task queue or, failing that, for snapstore's Flattener; for a linked
// snapshot none, unless its chain passed a limit: see linked.ts), the store's finalize (what makes the
// clone one of its images), and the location registered with Glance.
import type { Image, Ioctx } from '../../ceph/index.js';
import type { DirectAssessment, FlattenChoice, PathResult, RunContext } from '../context.js';
import { queueFlattenRequest } from '../flatten-queue.js';
import { INSTANT_CLONE_FEATURES, type FlattenRequest } from '../instant.js';
import { chainOf } from '../linked.js';
import { RUN_KEY_PREFIX, encodeMark, lockCookie, pendingMarker } from '../names.js';
import { isExists, removeImageFully, whileBusy } from '../rbd-util.js';
import { StallWatch, stallBoundMs } from '../stall.js';
import { queueFlatten } from './background.js';
import { createGlanceImage, registerLocation } from './glance.js';
import { dropSourceSnapshot, recordRun, takeSourceSnapshot, unrecordRun, type SourceRun } from './source-run.js';

/** The clone, open, and whether the run holds an advisory lock on it (see makeClone). */
interface Clone {
  image: Image;
  advisoryLock: boolean;
}

export async function direct(ctx: RunContext, a: DirectAssessment, flatten: FlattenChoice): Promise<PathResult> {
  const { imageId } = ctx;
  const { fsid } = a.where;
  const s = await recordRun(ctx, a, 'direct', await ctx.store.locationOf(imageId));
  await createGlanceImage(ctx, ctx.opts.name ?? `${a.src.image} snapshot`);
  await takeSourceSnapshot(ctx, a, s);
  const protectedHere = s.ownSnap && a.cloneFormat === 1;
  if (protectedHere) await ctx.r.step('snap-protect', async () => (await s.handle.get()).snapProtect(s.snapName));
  // Linked: how deep the new image's chain would be (the disk may itself be a clone of a linked image).
  const chain = flatten.mode === 'never' ? await ctx.r.step('chain-depth', async () => chainOf(a.session, await s.handle.get(), flatten.limits)) : undefined;
  await s.handle.close();

  const later = flatten.mode === 'background' || chain?.limit === 'soft';
  const clone = await makeClone(ctx, a, s, await a.session.pool(a.where.pool), flatten.mode !== 'sync');
  // Background and linked: no flatten here (but past the hard limit); the source snapshot, removed below,
  // waits in the snapshot trash.
  if (flatten.mode === 'sync' || chain?.limit === 'hard') await flattenClone(ctx, clone.image, stallBoundMs(a.session));
  await dropSourceSnapshot(ctx, s, protectedHere);
  const location = await ctx.r.step('finalize', () => a.clones.finalize(imageId, clone.image));
  const request = await releaseClone(ctx, a, s, clone, later);
  const sizeBytes = await clone.image.size();
  const marker = encodeMark(pendingMarker(ctx.r.runId, 'direct', a.canonical, s.snapName));
  const glance = await registerLocation(ctx, location, { expectedFsid: fsid, marker });
  // The mark comes off last, once Glance holds the location and the lock is gone: a kill before leaves a
  // marked clone of a run in the journal, which gc removes (or, registered already, keeps and unmarks).
  await ctx.r.step('unmark-clone', () => a.clones.clearPending(clone.image));
  await unrecordRun(ctx, s);
  // The snapshot is complete here: queueing its flatten can no longer fail it, only choose who flattens.
  const osdCaps = `profile rbd pool=${a.where.pool}, profile rbd-read-only pool=${a.src.pool}`;
  const queued = request ? await queueFlatten(ctx, clone.image, request, osdCaps) : undefined;
  return { imageId, location, sizeBytes, glance, checksums: null, ...(queued ? { queued } : {}), ...(chain ? { chain } : {}) };
}

/** Clones the source snapshot into the target pool and marks the clone pending, through one open handle. */
async function makeClone(ctx: RunContext, a: DirectAssessment, s: SourceRun, dstIo: Ioctx, unflattened: boolean): Promise<Clone> {
  const { r, imageId } = ctx;
  const cloneUndo = r.undo(`remove clone ${a.where.pool}/${imageId}`, () => whileBusy(() => removeImageFully(dstIo, imageId)));
  try {
    await r.step('clone', () =>
      s.io.clone(a.src.image, s.snapName, dstIo, imageId, { format: a.cloneFormat, ...(unflattened ? { features: INSTANT_CLONE_FEATURES } : {}) }),
    );
  } catch (err) {
    // Someone else's image of that name: not ours to remove.
    if (isExists(err)) cloneUndo.release();
    throw err;
  }
  let opened: Image | null = null;
  r.always('close clone', async () => {
    await opened?.close();
  });
  const marker = encodeMark(pendingMarker(r.runId, 'direct', a.canonical, s.snapName));
  // The run's advisory lock (see lockCookie) is the same cls lock the exclusive-lock feature manages: on a
  // clone with that feature (Ceph's default features) it would keep flatten from ever getting the lock it
  // needs, so there the feature's own lock, held by this handle while it writes, stands in for it.
  return r.step('mark-clone', async () => {
    const image = await dstIo.openImage(imageId);
    opened = image;
    const advisoryLock = !(await image.stat()).featureNames.includes('exclusive-lock');
    if (advisoryLock) await image.lockAcquireExclusive(lockCookie(r.runId));
    // Undone before the clone is removed: the store's pending index must not name a clone that is gone.
    r.undo(`clear the mark of ${a.where.pool}/${imageId}`, () => a.clones.clearPending(image));
    await a.clones.markPending(image, marker);
    // librbd copies the disk's image metadata into a clone: the disk's run records (this run's and those of
    // runs going on beside it) are not records of this image, and must not outlive the run on it.
    for (const key of Object.keys(await image.metadataList())) {
      if (key.startsWith(RUN_KEY_PREFIX)) await image.metadataRemove(key);
    }
    return { image, advisoryLock };
  });
}

/** Flattens the clone; fails with CEPH_UNREACHABLE after `boundMs` without progress (see stall.ts). */
async function flattenClone(ctx: RunContext, clone: Image, boundMs: number): Promise<void> {
  const { r, opts } = ctx;
  const stop = new AbortController();
  const watch = new StallWatch(boundMs, 'flatten', () => stop.abort());
  const onAbort = () => stop.abort();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await r.step('flatten', () =>
      watch.race(
        clone.flatten({
          signal: stop.signal,
          onProgress: (done, total) => {
            watch.touch();
            if (!r.progress('flatten', 'flatten', done, total)) stop.abort();
          },
        }),
      ),
    );
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }
}

/**
 * The clone is finished: (background, or linked past the soft limit) it is queued for its flatten, and
 * the run's lock comes off. The run's mark stays until Glance holds the location (see direct()); a
 * flattener may flatten the clone meanwhile, which is what would happen anyway, and a run killed before
 * its end leaves a marked clone gc removes, breaking that flattener's lock.
 */
async function releaseClone(ctx: RunContext, a: DirectAssessment, s: SourceRun, clone: Clone, queue: boolean): Promise<FlattenRequest | null> {
  const { r } = ctx;
  return r.step('unlock-clone', async () => {
    let request: FlattenRequest | null = null;
    if (queue) {
      request = {
        v: 1,
        requestedAt: new Date().toISOString(),
        runId: r.runId,
        source: a.canonical,
        sourceSnap: s.ownSnap ? s.snapName : null,
      };
      await queueFlattenRequest(clone.image, request);
    }
    if (clone.advisoryLock) await clone.image.unlock(lockCookie(r.runId));
    return request;
  });
}
