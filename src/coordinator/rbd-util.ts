// Small RBD routines the paths and gc share.
import type { Image, Ioctx } from 'ceph-rbd-napi';
import { codeOf, hasCode } from '../errors.js';
import { isNotFound } from './classify.js';

export async function ignoreNotFound(p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}

/**
 * Opens `name`, runs `use` on it and closes it, whatever `use` does. An image that does not exist gives
 * `missing` instead (snapstore often cleans up after runs whose images may already be gone).
 */
export async function withImage<T>(
  io: Ioctx,
  name: string,
  opts: { readOnly?: boolean },
  missing: T,
  use: (image: Image) => Promise<T>,
): Promise<T> {
  let image: Image;
  try {
    image = await io.openImage(name, opts.readOnly ? { readOnly: true } : {});
  } catch (err) {
    if (isNotFound(err)) return missing;
    throw err;
  }
  try {
    return await use(image);
  } finally {
    await image.close();
  }
}

/** Unprotects (when protected) and removes a snapshot; a snapshot that is already gone is fine. */
export async function removeSnapshot(image: Image, snap: string): Promise<void> {
  let isProtected = false;
  try {
    isProtected = await image.snapIsProtected(snap);
  } catch (err) {
    if (isNotFound(err)) return;
    throw err;
  }
  if (isProtected) await ignoreNotFound(image.snapUnprotect(snap));
  await ignoreNotFound(image.snapRemove(snap));
}

/**
 * Removes an image snapstore created, with its user snapshots (unprotecting them first). Gone already is
 * fine. Never used on anything snapstore did not create.
 */
export async function removeImageFully(io: Ioctx, name: string): Promise<void> {
  const exists = await withImage(io, name, {}, false, async (image) => {
    for (const s of await image.snapList()) {
      if (s.namespace === 'user') await removeSnapshot(image, s.name);
    }
    return true;
  });
  if (exists) await ignoreNotFound(io.removeImage(name));
}

/**
 * Retries `fn` while it fails with EBUSY (a watcher going away), `attempts` times in all, waiting
 * `delayMs` × attempt (or a flat `delayMs` without backoff) in between.
 */
export async function whileBusy<T>(
  fn: () => Promise<T>,
  { attempts = 5, delayMs = 200, backoff = true }: { attempts?: number; delayMs?: number; backoff?: boolean } = {},
): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (i >= attempts || codeOf(err) !== 'BUSY') throw err;
      await new Promise((r) => setTimeout(r, backoff ? delayMs * i : delayMs));
    }
  }
}

export function isExists(err: unknown): boolean {
  return hasCode(err, 'EXISTS');
}
