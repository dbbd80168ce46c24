// The run's image in the target store: whether its id is free, and its pending mark while the run is not
// finished (see names.ts).
import { rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { codeOf } from '../../errors.js';
import { formatFileLocation } from '../../location.js';
import { isNotFound } from '../classify.js';
import type { Assessment, RunContext, Services, Sink } from '../context.js';
import { TargetExistsError } from '../errors.js';
import { PENDING_KEY, encodeMark, pendingFileName, type PendingMarker } from '../names.js';

/** Refuses to start when the image id is taken (gc would otherwise count someone else's image as ours). */
export async function checkTargetFree(svc: Services, a: Assessment, method: 'direct' | 'copy', sink: Sink, imageId: string): Promise<void> {
  if (method === 'copy' && sink === 'glance') return;
  let exists = false;
  const target = svc.target;
  if (target.kind === 'rbd') {
    const session = method === 'direct' && a.kind === 'rbd' ? a.session : await svc.targetSession();
    const io = await session.pool(target.pool);
    try {
      await io.statImage(imageId);
      exists = true;
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  } else {
    exists = await stat(join(target.dataDir, imageId)).then(
      () => true,
      (err: unknown) => {
        if (codeOf(err) === 'ENOENT') return false;
        throw err;
      },
    );
  }
  if (exists) {
    throw new TargetExistsError(`image ${imageId} already exists in the target store`, { imageId });
  }
}

/** Where the copy path's image will be, as the run record names it. */
export function targetText(svc: Services, a: Assessment, imageId: string, sink: Sink): string {
  if (sink === 'glance') return `glance:${imageId}`;
  const target = svc.target;
  return target.kind === 'rbd' ? `rbd://${a.targetFsid}/${target.pool}/${imageId}` : formatFileLocation(join(resolve(target.dataDir), imageId));
}

/** Marks the image the store wrote as this run's until the run completes. */
export async function markTarget(ctx: RunContext, marker: PendingMarker): Promise<void> {
  const { svc, imageId } = ctx;
  const target = svc.target;
  if (target.kind === 'file') {
    const path = join(resolve(target.dataDir), pendingFileName(imageId));
    ctx.r.undo(`remove ${path}`, () => rm(path, { force: true }));
    await writeFile(path, encodeMark(marker), { flag: 'wx' });
    return;
  }
  const image = await (await (await svc.targetSession()).pool(target.pool)).openImage(imageId);
  try {
    await image.metadataSet(PENDING_KEY, encodeMark(marker));
  } finally {
    await image.close();
  }
}

export async function unmarkTarget(ctx: RunContext): Promise<void> {
  const { svc, imageId } = ctx;
  const target = svc.target;
  if (target.kind === 'file') {
    await rm(join(resolve(target.dataDir), pendingFileName(imageId)));
    return;
  }
  const image = await (await (await svc.targetSession()).pool(target.pool)).openImage(imageId);
  try {
    await image.metadataRemove(PENDING_KEY);
  } finally {
    await image.close();
  }
}
