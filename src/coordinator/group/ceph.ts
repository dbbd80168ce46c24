// The Ceph side of a group snapshot: which group the disks are snapshotted through (the one they are all
// in already, used as is, or a temporary one of the run's), the group snapshot itself, the id each disk
// knows it by, and taking both down again — as run steps (with their undo) and for gc.
import type { ImageGroup } from 'ceph-rbd-napi';
import { loadNative, type CephCluster } from '../../ceph/index.js';
import { InternalError, SnapstoreError } from '../../errors.js';
import { SNAP_PREFIX } from '../names.js';
import { ignoreNotFound, withImage } from '../rbd-util.js';
import type { StepRunner, UndoHandle } from '../steps.js';

/** One disk of the group, as the run reads it. */
export interface GroupDisk {
  pool: string;
  image: string;
  /** `rbd://fsid/pool/image` */
  canonical: string;
}

/** The Ceph group a run snapshots through, and its group snapshot. */
export interface CephGroup {
  pool: string;
  name: string;
  /** Made by the run (and removed by it); otherwise the disks' own group, left as it was. */
  temporary: boolean;
  snap: string;
}

export const TEMP_GROUP_PREFIX = 'snapstore-group-';

export function tempGroupName(groupId: string): string {
  return `${TEMP_GROUP_PREFIX}${groupId}`;
}

export function groupSnapName(groupId: string): string {
  return `${SNAP_PREFIX}${groupId}`;
}

async function groupOf(session: CephCluster, d: GroupDisk): Promise<ImageGroup | null> {
  const rbd = await loadNative();
  return withImage(await session.pool(d.pool), d.image, { readOnly: true }, null, (img) => rbd.imageGroup(img));
}

/**
 * The group to snapshot the disks through: when none is in a group, a temporary one in the first disk's
 * pool; when all are in the same group, that group (its other images get the group snapshot too, for as
 * long as the run lasts). @throws GROUP_CONFLICT when some are in a group and others not, or in different ones
 */
export async function chooseGroup(session: CephCluster, disks: [GroupDisk, ...GroupDisk[]], groupId: string): Promise<CephGroup> {
  const rbd = await loadNative();
  const groups = await Promise.all(disks.map((d) => groupOf(session, d)));
  const snap = groupSnapName(groupId);
  const first = groups[0];
  if (groups.every((g) => g === null)) return { pool: disks[0].pool, name: tempGroupName(groupId), temporary: true, snap };
  const same = first && groups.every((g) => g && g.name === first.name && g.poolId === first.poolId);
  if (!same) {
    const where = disks.map((d, i) => `${d.canonical} in ${groups[i] ? `group ${groups[i].name}` : 'no group'}`).join(', ');
    throw new SnapstoreError('GROUP_CONFLICT', `the disks must be in one RBD group or in none: ${where}`, { context: { sources: disks.map((d) => d.canonical) } });
  }
  // ceph-rbd-napi names a group's pool by id: find it among the disks' pools by the group's images.
  for (const pool of new Set(disks.map((d) => d.pool))) {
    const io = await session.pool(pool);
    if (!(await rbd.groupList(io)).includes(first.name)) continue;
    const images = (await rbd.groupImageList(io, first.name)).map((i) => i.name);
    if (disks.every((d) => images.includes(d.image))) return { pool, name: first.name, temporary: false, snap };
  }
  throw new SnapstoreError('GROUP_CONFLICT', `the disks are in group ${first.name}, whose pool is none of the disks' pools; snapstore cannot reach it`, {
    context: { sources: disks.map((d) => d.canonical) },
  });
}

/** What takeGroupSnapshot pushed on the undo stack, released once dropGroupSnapshot removed it. */
export interface GroupUndo {
  group: UndoHandle | null;
  snap: UndoHandle;
}

/** Steps: the temporary group with the disks in it (when the run makes one), then the group snapshot. */
export async function takeGroupSnapshot(r: StepRunner, session: CephCluster, g: CephGroup, disks: GroupDisk[]): Promise<GroupUndo> {
  const rbd = await loadNative();
  const io = await session.pool(g.pool);
  let group: UndoHandle | null = null;
  if (g.temporary) {
    // Removing the group takes its images out of it and removes its snapshots: one undo for all three steps.
    group = r.undo(`remove group ${g.pool}/${g.name}`, () => ignoreNotFound(rbd.groupRemove(io, g.name)));
    await r.step('group-create', () => rbd.groupCreate(io, g.name));
    await r.step('group-add', async () => {
      for (const d of disks) await rbd.groupImageAdd(io, g.name, await session.pool(d.pool), d.image);
    });
  }
  const snap = r.undo(`remove group snapshot ${g.pool}/${g.name}@${g.snap}`, () => ignoreNotFound(rbd.groupSnapRemove(io, g.name, g.snap)));
  await r.step('group-snap', () => rbd.groupSnapCreate(io, g.name, g.snap));
  return { group, snap };
}

/** The id of each disk's snapshot of the group snapshot (a group snapshot is read by id: it has no user name). */
export async function memberSnapIds(session: CephCluster, g: CephGroup, disks: GroupDisk[]): Promise<bigint[]> {
  const rbd = await loadNative();
  return Promise.all(
    disks.map(async (d) => {
      const id = await withImage(await session.pool(d.pool), d.image, { readOnly: true }, null, async (img) => {
        const group = await rbd.imageGroup(img);
        return group ? rbd.groupSnapIdOf(img, group, g.snap) : null;
      });
      if (id === null) throw new InternalError(`${d.canonical} has no snapshot of group snapshot ${g.name}@${g.snap}`);
      return id;
    }),
  );
}

/** Steps: the group snapshot removed, and the temporary group (the disks are then as they were). */
export async function dropGroupSnapshot(r: StepRunner, session: CephCluster, g: CephGroup, undo: GroupUndo): Promise<void> {
  const rbd = await loadNative();
  const io = await session.pool(g.pool);
  await r.step('group-snap-remove', () => ignoreNotFound(rbd.groupSnapRemove(io, g.name, g.snap)));
  undo.snap.release();
  if (!g.temporary) return;
  await r.step('group-remove', () => ignoreNotFound(rbd.groupRemove(io, g.name)));
  undo.group?.release();
}

/** gc: removes what a group run left in Ceph (its group snapshot; its temporary group). Gone already is fine. */
export async function removeGroupLeftovers(session: CephCluster, g: CephGroup): Promise<void> {
  const rbd = await loadNative();
  const io = await session.pool(g.pool);
  if (g.temporary && (await rbd.groupList(io)).includes(g.name)) {
    await rbd.groupRemove(io, g.name);
    return;
  }
  if (!(await rbd.groupList(io)).includes(g.name)) return;
  await ignoreNotFound(rbd.groupSnapRemove(io, g.name, g.snap));
}
