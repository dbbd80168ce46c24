// Disks nova deleted while linked snapshots used them (linked.ts): librbd moved them to the RBD trash
// (source USER_PARENT) and removes them itself when their last clone goes — but as the user removing that
// clone, and Glance's user, which may only read the disks' pool, cannot: the disk then stays in the trash,
// data and all. gc finishes it, as the disks' user, and only for a trash entry that
//  - librbd moved there because of clones (USER_PARENT),
//  - snapstore made a parent of: every snapshot it has left is a trashed `snapstore-<uuid>` one,
//  - no image of the store's clone pool still hangs from (librbd would refuse anyway: EBUSY).
// No age or lease applies: such an entry is what librbd itself removes the moment it can, and nothing can
// make it a parent again (a trashed snapshot cannot be cloned), so removing it races with nothing.
import type { Image, Ioctx } from '../../ceph/index.js';
import { SnapstoreError, hasCode } from '../../errors.js';
import { isNotFound } from '../classify.js';
import { errorText } from '../events.js';
import { runIdOfSnap } from '../names.js';
import { clonePool } from './removals.js';
import { toLeftover, type Scan } from './scan.js';

export async function scanTrashedParents(scan: Scan): Promise<void> {
  const { source } = scan;
  const pool = scan.ctx.source?.config.pool;
  if (!source || !pool) return;
  const io = await source.pool(pool);
  const candidates = [];
  for (const entry of await io.trashList()) {
    if (entry.source !== 'user_parent') continue;
    if (await madeParentBySnapstore(scan, io, entry.id)) candidates.push(entry);
  }
  if (candidates.length === 0) return;
  const used = await parentsInUse(scan);
  for (const entry of candidates) {
    const leftover = toLeftover('trashed-disk', `rbd://${source.fsid}/${pool}/${entry.name}#trash:${entry.id}`, null, null, entry.deletionTime.getTime());
    if (used.has(entry.id)) {
      scan.ctx.emit({ type: 'gc', action: 'kept', leftover, why: 'linked images still use it' });
      continue;
    }
    scan.add([{ leftover, remove: () => removeFromTrash(io, entry.id) }]);
  }
}

/** Whether every snapshot the trashed image has left is a trashed snapstore snapshot (and there is one). */
async function madeParentBySnapstore(scan: Scan, io: Ioctx, id: string): Promise<boolean> {
  let image: Image | null = null;
  try {
    image = await io.openImageById(id, { readOnly: true });
    const snaps = await image.snapList();
    return snaps.length > 0 && snaps.every((s) => s.namespace === 'trash' && s.originalName !== undefined && runIdOfSnap(s.originalName) !== null);
  } catch (err) {
    if (!isNotFound(err)) scan.ctx.emit({ type: 'gc-skipped', location: `${io.pool}/trash:${id}`, why: `cannot read it: ${errorText(err)}` });
    return false;
  } finally {
    await image?.close();
  }
}

/** Ids of the images the store's clone pool's images hang from. */
async function parentsInUse(scan: Scan): Promise<Set<string>> {
  const used = new Set<string>();
  const io = await clonePool(scan.source, (await scan.store.clones?.where()) ?? null);
  if (!io) return used;
  for (const name of await io.listImages()) {
    const st = await io.statImage(name).catch(() => null);
    if (st?.parent) used.add(st.parent.imageId);
  }
  return used;
}

/** librbd removes the trashed snapshots nothing uses, then the image; it refuses while a clone remains. */
async function removeFromTrash(io: Ioctx, id: string): Promise<void> {
  try {
    await io.trashRemove(id);
  } catch (err) {
    if (isNotFound(err)) return;
    if (hasCode(err, 'BUSY', 'HAS_SNAPSHOTS')) throw new SnapstoreError('IN_USE', `linked images still use it (${errorText(err)})`, { cause: err });
    throw err;
  }
}
