// The copy path: a point-in-time snapshot of the disk (or the file itself) streamed into the target store
// (only the allocated objects of an RBD source are read, found from the object map where fast-diff is
// valid or by listing the data pool, and its holes handed to the store as lengths), or uploaded through Glance when Glance
// refuses locations; then marked, the source snapshot removed, and the location registered with Glance.
import { stat } from 'node:fs/promises';
import type { Image } from '../../ceph/index.js';
import type { AddOptions, StorePiece } from '../../store.js';
import type { Assessment, FileAssessment, PathResult, RbdAssessment, RunContext, Sink } from '../context.js';
import { NotConfiguredError } from '../errors.js';
import { allocatedBytes, allocatedExtents, readPlan, sparseExtentStream, withZeros } from '../extents.js';
import { encodeMark, pendingMarker } from '../names.js';
import type { SnapshotResult } from '../types.js';
import { StallWatch, stallBoundMs } from '../stall.js';
import { fileStream, recordFileRun, unrecordFileRun } from './file-source.js';
import { createGlanceImage, registerLocation, wantChecksums } from './glance.js';
import { dropSourceSnapshot, openSnapshotReader, recordRun, takeSourceSnapshot, unrecordRun, type SourceRun } from './source-run.js';
import { targetText } from './target.js';

/** What the copy step wrote, and where. */
export interface Copied {
  location: string;
  sizeBytes: number;
  checksums: SnapshotResult['checksums'];
}

/** The data to copy (for a store: holes as lengths) and its size. */
interface Data {
  data: AsyncIterable<StorePiece>;
  sizeBytes: number;
}

/** What the copy reads: a snapshot of an RBD source the run holds, or a file. */
export type From = { disk: true; a: RbdAssessment; s: SourceRun } | { disk: false; a: FileAssessment };

export async function copy(ctx: RunContext, a: Assessment, sink: Sink): Promise<PathResult> {
  const { svc, imageId } = ctx;
  if (sink === 'glance' && (!svc.glance || !ctx.glanceImage)) throw new NotConfiguredError('uploading through Glance needs Glance');
  const target = await targetText(ctx.store, imageId, sink);
  const from: From = a.disk ? { disk: true, a, s: await recordRun(ctx, a, 'copy', target) } : { disk: false, a };
  const s = from.disk ? from.s : null;
  const fileLease = from.disk ? null : await recordFileRun(ctx, from.a, target);
  await createGlanceImage(ctx, ctx.opts.name ?? `${from.disk ? from.a.src.image : 'file'} snapshot`);
  if (from.disk) {
    await takeSourceSnapshot(ctx, from.a, from.s);
    await from.s.handle.close();
  }

  // The store marks the image pending from its creation on (atomically with it), until unmark-target.
  const marker = encodeMark(pendingMarker(ctx.r.runId, 'copy', a.canonical, s?.ownSnap ? s.snapName : null));
  const copied = await copyData(ctx, from, sink, marker);
  if (s) await dropSourceSnapshot(ctx, s, false);
  const { glance, location } = await register(ctx, a, sink, copied, marker);
  // The mark comes off only once Glance holds the location: a kill before leaves a marked image of a run
  // in the journal, which gc removes (or, registered already, keeps and unmarks: see gc/run-targets.ts).
  if (sink === 'store') await ctx.r.step('unmark-target', () => ctx.store.clearPending(imageId));
  if (s) await unrecordRun(ctx, s);
  else await unrecordFileRun(fileLease);
  return { imageId: glance?.id ?? imageId, location, sizeBytes: copied.sizeBytes, glance, checksums: copied.checksums };
}

/** The `copy` step: the source's bytes into the store, or up to Glance. */
export async function copyData(ctx: RunContext, from: From, sink: Sink, marker: string): Promise<Copied> {
  const { r, opts, svc, imageId } = ctx;
  let reader: Image | null = null;
  r.always('close snapshot reader', async () => {
    await reader?.close();
  });
  const stopCopy = new AbortController();
  const onAbort = () => stopCopy.abort(opts.signal?.reason);
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const checksums = sink === 'store' && (await wantChecksums(svc.glance, opts.checksums ?? 'auto', ctx.glanceImage !== null));
  const target = sink === 'store' ? await svc.storeUserSession().catch(() => null) : null;
  const watch = new StallWatch(stallBoundMs(from.disk ? from.a.session : null, target), 'copy', () => stopCopy.abort());
  const progress = (done: number, total: number) => {
    watch.touch();
    const go = r.progress('copy', 'copy', done, total);
    if (!go) stopCopy.abort();
    return go;
  };
  let copied: Copied;
  try {
    copied = await r.step('copy', () => watch.race(copyOnce()));
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }
  await (reader as Image | null)?.close();
  return copied;

  async function copyOnce(): Promise<Copied> {
    let source: Data;
    if (from.disk) {
      reader = await openSnapshotReader(from.s, from.a.src.image);
      source = await rbdData(ctx, from.a, reader, sink, progress);
    } else {
      const path = from.a.src.path;
      const sizeBytes = (await stat(path)).size;
      source = { sizeBytes, data: fileStream(path, sizeBytes, progress, () => r.stopReason()) };
    }
    if (sink === 'glance' && svc.glance) {
      await svc.glance.upload(imageId, withZeros(source.data), { size: source.sizeBytes, signal: stopCopy.signal });
      return { location: `glance:${imageId}`, sizeBytes: source.sizeBytes, checksums: null };
    }
    return await addToStore(ctx, source, { signal: stopCopy.signal, checksums, pending: marker });
  }
}

/**
 * The allocated extents of the snapshot `reader` has open, a whole object each (allocatedExtents: from the
 * object map, or a listing of the data pool, never per MiB of hole). Reads go as many at once as the source
 * connection lets librbd run management ops.
 */
async function rbdData(ctx: RunContext, a: RbdAssessment, reader: Image, sink: Sink, progress: (done: number, total: number) => boolean): Promise<Data> {
  const { r } = ctx;
  const { size: sizeBytes, objectSize } = await reader.stat();
  const extents = await allocatedExtents(reader);
  ctx.svc.emit({ type: 'progress', runId: r.runId, phase: 'allocated', done: allocatedBytes(extents), total: sizeBytes });
  const plan = readPlan(objectSize, Number(a.session.confGet('rbd_concurrent_management_ops')));
  // A store copies each piece before asking for the next; Glance's HTTP body may still hold it.
  const sparse = sparseExtentStream(reader, extents, sizeBytes, { plan, progress, stop: () => r.stopReason(), reuseBuffers: sink === 'store' });
  return { data: sparse, sizeBytes };
}

async function addToStore(ctx: RunContext, source: Data, options: AddOptions): Promise<Copied> {
  const { store, imageId } = ctx;
  const added = await store.add(imageId, source.data, source.sizeBytes, options);
  ctx.r.undo(`delete ${added.location}`, async () => {
    await store.discard(imageId);
  });
  const hashes = added.checksum !== null && added.multihash !== null ? { checksum: added.checksum, multihash: added.multihash, hashAlgo: 'sha512' as const } : null;
  return { location: added.location, sizeBytes: source.sizeBytes, checksums: hashes };
}

/** Registers the copy with Glance: its location, or (uploaded through Glance) what Glance made of it. */
export async function register(ctx: RunContext, a: Assessment, sink: Sink, copied: Copied, marker: string): Promise<{ glance: SnapshotResult['glance']; location: string }> {
  const client = ctx.svc.glance;
  const target = ctx.glanceImage;
  if (!client || !target) return { glance: null, location: copied.location };
  if (sink === 'store') {
    return { glance: await registerLocation(ctx, copied.location, { checksums: copied.checksums, expectedFsid: a.targetFsid, marker }), location: copied.location };
  }
  const image = await client.getImage(target.id);
  const direct = typeof image.direct_url === 'string' ? image.direct_url : image.locations?.[0]?.url;
  return { glance: { id: image.id, status: image.status }, location: direct ?? copied.location };
}

