// Where FileStore keeps what: `<id>` (the image), `.<id>.<random>.tmp` (written, then linked to `<id>`),
// `.<id>.snapstore-pending` (the mark of an unfinished image, holding the caller's marker). Image ids never
// start with a dot (checkImageId), so these names cannot collide with an image. Only the driver uses them.
import { randomUUID } from 'node:crypto';
import { checkImageId } from '../../location.js';

export function isImageName(name: string): boolean {
  try {
    checkImageId(name);
    return true;
  } catch {
    return false;
  }
}

/** The dot file marking `imageId` unfinished (dot names are never image ids: see checkImageId). */
export function pendingName(imageId: string): string {
  return `.${imageId}.snapstore-pending`;
}

/** The image id a directory entry marks, or null. */
export function imageIdOfPendingName(name: string): string | null {
  const m = /^\.(.+)\.snapstore-pending$/.exec(name);
  const id = m?.[1];
  return id !== undefined && isImageName(id) ? id : null;
}

/** A temporary file `add` (or a mark update) writes through: `.<id>.<random>.tmp`. */
export function tempName(imageId: string): string {
  return `.${imageId}.${randomUUID().slice(0, 8)}.tmp`;
}

export function isTempOf(imageId: string, name: string): boolean {
  return name.startsWith(`.${imageId}.`) && name.endsWith('.tmp') && /^[0-9a-f]{8}$/.test(name.slice(imageId.length + 2, -4));
}
