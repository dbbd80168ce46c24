// RbdStore's bookkeeping of unfinished images: the pending mark (image metadata, see layout.ts) and its
// index (pending-index.ts), the listing gc runs over it, and `discard`. All of it goes through one Ioctx on the store's pool, opened by the
// connection allowed to open clones whose parent lives in the disks' pool (RbdStoreConfig.parentReader):
// librbd opens a clone's parent with the clone, and Glance's user often may not read that pool.
import type { Image, Ioctx } from '../../ceph/index.js';
import { hasCode } from '../../errors.js';
import type { PendingEntry } from '../../store.js';
import { ceph, unlessMissing } from './errors.js';
import { PENDING_KEY, RBD_SNAPSHOT } from './layout.js';
import { decodeIndexEntry, indexDrop, indexGet, indexList, indexPut } from './pending-index.js';

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

/**
 * Sets the mark through an open handle (the store's own, or the clone path's): index entry, metadata, and
 * the entry again (see pending-index.ts). `indexed`: add already wrote the entry (with the mark, as
 * `creating`), which must stay until the metadata holds the mark.
 */
export async function setMark(image: Image, marker: string, indexed = false): Promise<void> {
  const io = image.ioctx;
  if (!indexed) await indexPut(io, image.name);
  const what = `marking ${io.pool}/${image.name} pending`;
  await ceph(what, contextOf(io, image.name), () => image.metadataSet(PENDING_KEY, marker));
  await indexPut(io, image.name);
}

/** Removes the mark through an open handle, then its index entry (unless marked again meanwhile); no mark is fine. */
export async function removeMark(image: Image): Promise<void> {
  const io = image.ioctx;
  const entry = await indexGet(io, image.name);
  const what = `clearing the pending mark of ${io.pool}/${image.name}`;
  await unlessMissing(what, contextOf(io, image.name), undefined, () => image.metadataRemove(PENDING_KEY));
  if (entry !== null) await indexDrop(io, image.name, entry);
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
  const found = await withOpenImage(io, name, false, false, async (image) => {
    await removeMark(image);
    return true;
  });
  if (!found) await dropEntry(io, name);
}

/** Drops `name`'s index entry, whatever it says (its image is gone). */
export async function dropEntry(io: Ioctx, name: string): Promise<void> {
  const entry = await indexGet(io, name);
  if (entry !== null) await indexDrop(io, name, entry);
}

/**
 * The mark of `name`; null when unmarked or gone. The entry of an image that is gone is dropped on the way,
 * as listMarks does: it names nothing (an `add` killed between writing it and librbd's create), and no
 * other reader would ever drop it (gc asks this for a dead run's target, finds no image and no mark).
 */
export async function readMark(io: Ioctx, name: string): Promise<string | null> {
  const entry = await indexGet(io, name);
  const gone = Symbol('gone');
  const mark = await withOpenImage(io, name, true, gone, (image) => markOf(image, entry));
  if (mark !== gone) return mark;
  if (entry !== null) await indexDrop(io, name, entry);
  return null;
}

/**
 * The mark of an open image: its metadata, or — when `add` was killed between creating it and writing the
 * metadata — the mark its `creating` index entry carries. A finished image (it has `snap`) never counts as
 * such: an entry left by an `add` that found the name taken must not claim someone else's image.
 */
async function markOf(image: Image, entryText: string | null): Promise<string | null> {
  const what = `reading the pending mark of ${image.ioctx.pool}/${image.name}`;
  const context = contextOf(image.ioctx, image.name);
  const marker = await ceph(what, context, () => image.metadataGet(PENDING_KEY));
  if (marker !== null || entryText === null) return marker;
  const creating = decodeIndexEntry(entryText)?.creating;
  if (creating === undefined) return null;
  return (await ceph(what, context, () => image.snapExists(RBD_SNAPSHOT))) ? null : creating;
}

/**
 * Every marked image the index names (see pending-index.ts), sorted by id; only those images are opened.
 * Entries whose image is gone or unmarked are dropped on the way. `scanAll` also visits every image
 * of the pool, for marks written by versions before the index (gc --scan-images), and indexes those.
 */
export async function listMarks(io: Ioctx, locationOf: (name: string) => string, scanAll = false): Promise<PendingEntry[]> {
  const index = await indexList(io);
  const names = [...index.keys()];
  if (scanAll) names.push(...(await ceph(`listing pool ${io.pool}`, { pool: io.pool }, () => io.listImages())).filter((n) => !index.has(n)));
  const found: PendingEntry[] = [];
  await inParallel(names, async (name) => {
    const entry = index.get(name) ?? null;
    const marker = await withOpenImage(io, name, true, null, (image) => markOf(image, entry));
    if (marker !== null) {
      found.push({ imageId: name, location: locationOf(name), marker });
      if (entry === null) await indexPut(io, name);
    } else if (entry !== null) {
      // Checked just now: gone or unmarked. A mark written since changed the entry, and keeps it.
      await indexDrop(io, name, entry);
    }
  });
  return found.sort((x, y) => (x.imageId < y.imageId ? -1 : x.imageId > y.imageId ? 1 : 0));
}

async function inParallel(names: string[], each: (name: string) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    for (let name = names[next++]; name !== undefined; name = names[next++]) await each(name);
  };
  await Promise.all(Array.from({ length: Math.min(SCAN_PARALLEL, names.length) }, worker));
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
  if (!found) {
    await dropEntry(io, name);
    return false;
  }
  await whileWatched(() => removeWithSnapshots(io, name, what));
  await dropEntry(io, name);
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
