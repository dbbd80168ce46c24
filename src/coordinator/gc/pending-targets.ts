// Targets a killed run left unfinished, recognised by their pending mark (see names.ts): clones and copies
// in the target pool carrying `snapstore.pending`, and file-store images with a pending file.
import { readFile, readdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { formatFileLocation } from '../../location.js';
import { PENDING_KEY, decodePendingMarker, imageIdOfPendingFile, pendingFileName, probeTime } from '../names.js';
import { markedSource, removeClone, removeSourceSnapshot, targetPoolReader } from './removals.js';
import { readImage, toLeftover, type Removal, type Scan } from './scan.js';

export async function scanPendingTargets(scan: Scan): Promise<void> {
  const target = scan.ctx.target;
  if (target.kind === 'file') return scanPendingFiles(scan, resolve(target.dataDir));
  const reader = targetPoolReader(scan.sessions);
  if (!reader) return;
  const pool = target.pool;
  const io = await reader.pool(pool);
  for (const name of await io.listImages()) {
    if (probeTime(name) !== null) continue;
    const text = await readImage(scan.ctx, io, name, (image) => image.metadataGet(PENDING_KEY));
    const m = text === null ? null : decodePendingMarker(text);
    if (!m) continue;
    const started = Date.parse(m.startedAt);
    const leftover = toLeftover('clone', `rbd://${reader.fsid}/${pool}/${name}`, m.runId, m.owner, started);
    if (!scan.qualifies(leftover, m.owner)) continue;
    const group: Removal[] = [{ leftover, remove: () => removeClone(io, name, m.runId) }];
    const src = markedSource(m.source, scan.sessions);
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

/** The file store: images whose pending file says they are unfinished. */
async function scanPendingFiles(scan: Scan, dir: string): Promise<void> {
  for (const entry of await readdir(dir).catch(() => [] as string[])) {
    const imageId = imageIdOfPendingFile(entry);
    if (!imageId) continue;
    const m = decodePendingMarker(await readFile(join(dir, entry), 'utf8').catch(() => ''));
    if (!m) continue;
    const leftover = toLeftover('target', formatFileLocation(join(dir, imageId)), m.runId, m.owner, Date.parse(m.startedAt));
    if (scan.qualifies(leftover, m.owner)) scan.add([{ leftover, remove: () => removeFileTarget(dir, imageId) }]);
  }
}

/**
 * Removes a file-store image with its pending file and the store's temporary files. With `runId`, the image
 * itself only when its pending file names that run.
 */
export async function removeFileTarget(dir: string, imageId: string, runId?: string): Promise<void> {
  const pending = join(dir, pendingFileName(imageId));
  const marker = decodePendingMarker(await readFile(pending, 'utf8').catch(() => ''));
  if (runId === undefined || marker?.runId === runId) {
    await rm(join(dir, imageId), { force: true });
  }
  // FileStore writes through `.<id>.<random>.tmp` in the same directory.
  const prefix = `.${imageId}.`;
  for (const n of await readdir(dir).catch(() => [] as string[])) {
    if (n.startsWith(prefix) && n.endsWith('.tmp')) await rm(join(dir, n), { force: true });
  }
  await rm(pending, { force: true });
}
