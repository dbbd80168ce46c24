// RbdStore's bookkeeping of unfinished images: the pending mark (image metadata, see layout.ts), the scan
// gc runs over the pool, and `discard`. All of it goes through one Ioctx on the store's pool, opened by the
// connection allowed to open clones whose parent lives in the disks' pool (RbdStoreConfig.parentReader):
// librbd opens a clone's parent with the clone, and Glance's user often may not read that pool.
import type { Image, Ioctx } from '../../ceph/index.js';
import { hasCode } from '../../errors.js';
import type { PendingEntry } from '../../store.js';
import { ceph, unlessMissing } from './errors.js';
import { PENDING_KEY } from './layout.js';

/**
 * A killed process's watch on an image lingers until the OSD times it out (osd_client_watch_timeout, 30 s
 * by default), and until then librbd refuses to remove the image (EBUSY): `discard` retries this long.
 */
const WATCH_WAIT_MS = 45_000;
const WATCH_RETRY_MS = 1000;
/** Images whose metadata the pool scan reads at once. */
const SCAN_PARALLEL = 4;

function contextOf(io: Ioctx, name: string): { pool: string; image: string } {
  return { pool: io.pool, image: name };
}

/** Opens `name`, runs `use` and closes it; `missing` when there is no such image. */
async function withOpenImage<T, M>(io: Ioctx, name: string, readOnly: boolean, missing: M, use: (image: Image) => Promise<T>): Promise<T | M> {
  const what = `opening ${io.pool}/${name}`;
  const opened = await unlessMissing(what, contextOf(io, name), null, () => io.openImage(name, readOnly ? { readOnly: true } : {}));
  if (opened === null) return missing;
  try {
    return await use(opened);
  } finally {
    await opened.close().catch(() => {});
  }
}

/** Sets the mark through an open handle (the store's own, or the clone path's). */
export async function setMark(image: Image, marker: string): Promise<void> {
  const what = `marking ${image.ioctx.pool}/${image.name} pending`;
  await ceph(what, contextOf(image.ioctx, image.name), () => image.metadataSet(PENDING_KEY, marker));
}

/** Removes the mark through an open handle; no mark is fine. */
export async function removeMark(image: Image): Promise<void> {
  const what = `clearing the pending mark of ${image.ioctx.pool}/${image.name}`;
  await unlessMissing(what, contextOf(image.ioctx, image.name), undefined, () => image.metadataRemove(PENDING_KEY));
}

/** @throws StoreNotFound when there is no such image. */
export async function markImage(io: Ioctx, name: string, marker: string): Promise<void> {
  const image = await ceph(`marking ${io.pool}/${name} pending`, contextOf(io, name), () => io.openImage(name));
  try {
    await setMark(image, marker);
  } finally {
    await image.close().catch(() => {});
  }
}

export async function clearMark(io: Ioctx, name: string): Promise<void> {
  await withOpenImage(io, name, false, undefined, removeMark);
}

export async function readMark(io: Ioctx, name: string): Promise<string | null> {
  const what = `reading the pending mark of ${io.pool}/${name}`;
  return withOpenImage(io, name, true, null, (image) => ceph(what, contextOf(io, name), () => image.metadataGet(PENDING_KEY)));
}

/** Every marked image of the pool; images removed while the scan runs are skipped. */
export async function listMarks(io: Ioctx, locationOf: (name: string) => string): Promise<PendingEntry[]> {
  const names = await ceph(`listing pool ${io.pool}`, { pool: io.pool }, () => io.listImages());
  const found: PendingEntry[] = [];
  let next = 0;
  const worker = async () => {
    for (let name = names[next++]; name !== undefined; name = names[next++]) {
      const marker = await readMark(io, name);
      if (marker !== null) found.push({ imageId: name, location: locationOf(name), marker });
    }
  };
  await Promise.all(Array.from({ length: Math.min(SCAN_PARALLEL, names.length) }, worker));
  return found.sort((x, y) => (x.imageId < y.imageId ? -1 : x.imageId > y.imageId ? 1 : 0));
}

/**
 * Removes `name` with its user snapshots after breaking every advisory lock on it (librbd blocklists the
 * holder, which ends a dead process's watch at once); false when there was no such image.
 */
export async function discardImage(io: Ioctx, name: string): Promise<boolean> {
  const what = `discarding ${io.pool}/${name}`;
  const context = contextOf(io, name);
  const found = await withOpenImage(io, name, false, false, async (image) => {
    for (const locker of await ceph(what, context, () => image.listLockers())) {
      await unlessMissing(`${what}: breaking the lock of ${locker.client}`, context, undefined, () => image.breakLock(locker.client, locker.cookie));
    }
    return true;
  });
  if (!found) return false;
  await whileWatched(() => removeWithSnapshots(io, name, what));
  return true;
}

async function removeWithSnapshots(io: Ioctx, name: string, what: string): Promise<void> {
  const context = contextOf(io, name);
  await withOpenImage(io, name, false, undefined, async (image) => {
    for (const snap of await ceph(what, context, () => image.snapList())) {
      if (snap.namespace !== 'user') continue;
      const isProtected = await unlessMissing(what, context, false, () => image.snapIsProtected(snap.name));
      if (isProtected) await unlessMissing(`${what}: unprotecting @${snap.name}`, context, undefined, () => image.snapUnprotect(snap.name));
      await unlessMissing(`${what}: removing @${snap.name}`, context, undefined, () => image.snapRemove(snap.name));
    }
  });
  await unlessMissing(`${what}: removing the image`, context, undefined, () => io.removeImage(name));
}

/** Retries `fn` while librbd answers EBUSY (a watch that has not timed out yet), for up to WATCH_WAIT_MS. */
async function whileWatched(fn: () => Promise<void>): Promise<void> {
  const deadline = Date.now() + WATCH_WAIT_MS;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (!hasCode(err, 'BUSY') || Date.now() + WATCH_RETRY_MS > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, WATCH_RETRY_MS));
    }
  }
}
