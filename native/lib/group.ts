// RBD groups (what `rbd group …` does): a group in a pool holds images (of any pool of the cluster), and a
// group snapshot snapshots all of them at one point in time — librbd quiesces every image's writers, then
// snapshots each. On every image a group snapshot is a snapshot in the group namespace: it has a name
// there, but opening an image "at" a name looks in the user namespace only, so it is read by id
// (imageSnapSetById, found with snapList / imageSnapGroupNamespace). The C++ glue is ../src/group.cc;
// errors go through the one errno table (ENOENT → NotFoundError: no such group, image or group snapshot;
// EEXIST → ExistsError: the group or snapshot exists, or the image is in a group already; …).
import type { NativeImage, NativeIoctx } from './binding.js';
import { load } from './binding.js';
import { checkName, checkUint, spec } from './checks.js';
import { imageInternals, type Image } from './image.js';
import { ioctxInternals, type Ioctx } from './ioctx.js';

export interface GroupImage {
  name: string;
  /** The image's pool, by id. */
  poolId: number;
  /** `incomplete`: an add or remove was interrupted (librbd finishes it on the next add/remove). */
  state: 'attached' | 'incomplete';
}

export interface GroupSnap {
  name: string;
  /** `incomplete`: the snapshot was interrupted; remove it. */
  state: 'complete' | 'incomplete';
}

/** The group an image belongs to. */
export interface ImageGroup {
  name: string;
  poolId: number;
}

/** The group snapshot an image's group-namespace snapshot belongs to. */
export interface SnapGroupNamespace {
  poolId: number;
  group: string;
  groupSnap: string;
}

interface GroupBinding {
  groupCreate(io: NativeIoctx, name: string): Promise<void>;
  groupRemove(io: NativeIoctx, name: string): Promise<void>;
  groupList(io: NativeIoctx): Promise<string[]>;
  groupImageAdd(gio: NativeIoctx, group: string, iio: NativeIoctx, image: string): Promise<void>;
  groupImageRemove(gio: NativeIoctx, group: string, iio: NativeIoctx, image: string): Promise<void>;
  groupImageList(io: NativeIoctx, group: string): Promise<GroupImage[]>;
  groupSnapCreate(io: NativeIoctx, group: string, snap: string): Promise<void>;
  groupSnapRemove(io: NativeIoctx, group: string, snap: string): Promise<void>;
  groupSnapList(io: NativeIoctx, group: string): Promise<GroupSnap[]>;
  imageGetGroup(image: NativeImage): Promise<ImageGroup | null>;
  imageSnapGroupNamespace(image: NativeImage, snapId: bigint | number): Promise<SnapGroupNamespace>;
  imageSnapSetById(image: NativeImage, snapId: bigint | number): Promise<void>;
}

function binding(): GroupBinding {
  return load() as unknown as GroupBinding;
}

function groupSpec(io: Ioctx, group?: string, snap?: string): string {
  return spec(io.pool, io.namespace, group === undefined ? undefined : `group:${group}`, snap);
}

/** A call on group `group` of `io`'s pool: checks the names, names the group in errors. */
function groupCall<T>(io: Ioctx, call: string, group: string, snap: string | undefined, start: (native: NativeIoctx) => Promise<T>): Promise<T> {
  const object = groupSpec(io, group, snap);
  const { native, life } = ioctxInternals(io);
  return life.run(call, object, () => {
    checkName(group, 'group name', call, object);
    if (snap !== undefined) checkName(snap, 'group snapshot name', call, object);
    return start(native);
  });
}

/** Creates an empty group. Implements rbd_group_create. @throws {ExistsError} the group exists */
export function groupCreate(io: Ioctx, name: string): Promise<void> {
  return groupCall(io, 'rbd_group_create', name, undefined, (n) => binding().groupCreate(n, name));
}

/**
 * Removes a group with its group snapshots (their snapshots on every image go too); its images stay, in no
 * group. Implements rbd_group_remove. A group that does not exist is not an error (librbd answers 0).
 */
export function groupRemove(io: Ioctx, name: string): Promise<void> {
  return groupCall(io, 'rbd_group_remove', name, undefined, (n) => binding().groupRemove(n, name));
}

/** The names of the pool's groups. Implements rbd_group_list. */
export function groupList(io: Ioctx): Promise<string[]> {
  const { native, life } = ioctxInternals(io);
  return life.run('rbd_group_list', groupSpec(io), () => binding().groupList(native));
}

/**
 * Adds image `image` of `imageIo`'s pool to group `group` of `groupIo`'s pool. Implements rbd_group_image_add.
 * @throws {ExistsError} the image is in a group already (this one or another)
 * @throws {NotFoundError} no such group or image
 */
export function groupImageAdd(groupIo: Ioctx, group: string, imageIo: Ioctx, image: string): Promise<void> {
  const call = 'rbd_group_image_add';
  const { native, life } = ioctxInternals(imageIo);
  return groupCall(groupIo, call, group, undefined, (n) =>
    life.run(call, spec(imageIo.pool, imageIo.namespace, image), () => {
      checkName(image, 'image name', call, undefined);
      return binding().groupImageAdd(n, group, native, image);
    }),
  );
}

/** Takes an image out of a group; an image not in it is no error (librbd answers 0). Implements rbd_group_image_remove. */
export function groupImageRemove(groupIo: Ioctx, group: string, imageIo: Ioctx, image: string): Promise<void> {
  const call = 'rbd_group_image_remove';
  const { native, life } = ioctxInternals(imageIo);
  return groupCall(groupIo, call, group, undefined, (n) =>
    life.run(call, spec(imageIo.pool, imageIo.namespace, image), () => {
      checkName(image, 'image name', call, undefined);
      return binding().groupImageRemove(n, group, native, image);
    }),
  );
}

/** The group's images (none for a group that does not exist, on Pacific). Implements rbd_group_image_list. */
export function groupImageList(io: Ioctx, group: string): Promise<GroupImage[]> {
  return groupCall(io, 'rbd_group_image_list', group, undefined, (n) => binding().groupImageList(n, group));
}

/**
 * Snapshots every image of the group at one point in time (crash-consistent across them). Implements
 * rbd_group_snap_create. @throws {ExistsError} the group has a snapshot of that name
 */
export function groupSnapCreate(io: Ioctx, group: string, snap: string): Promise<void> {
  return groupCall(io, 'rbd_group_snap_create', group, snap, (n) => binding().groupSnapCreate(n, group, snap));
}

/** Removes a group snapshot and its snapshot on every image. Implements rbd_group_snap_remove. @throws {NotFoundError} */
export function groupSnapRemove(io: Ioctx, group: string, snap: string): Promise<void> {
  return groupCall(io, 'rbd_group_snap_remove', group, snap, (n) => binding().groupSnapRemove(n, group, snap));
}

/** The group's snapshots. Implements rbd_group_snap_list. @throws {NotFoundError} no such group */
export function groupSnapList(io: Ioctx, group: string): Promise<GroupSnap[]> {
  return groupCall(io, 'rbd_group_snap_list', group, undefined, (n) => binding().groupSnapList(n, group));
}

/** The group the image is in, or null. Implements rbd_get_group. */
export function imageGroup(image: Image): Promise<ImageGroup | null> {
  const { native, life, spec: object } = imageInternals(image);
  return life.run('rbd_get_group', object, () => binding().imageGetGroup(native));
}

/**
 * The group snapshot a group-namespace snapshot of the image (by id, see Image.snapList) belongs to.
 * Implements rbd_snap_get_group_namespace. @throws {InvalidArgumentError} the snapshot is not a group one
 */
export function snapGroupNamespace(image: Image, snapId: bigint | number): Promise<SnapGroupNamespace> {
  const call = 'rbd_snap_get_group_namespace';
  const { native, life, spec: object } = imageInternals(image);
  return life.run(call, object, () => {
    checkUint(snapId, 'snapId', call, object);
    return binding().imageSnapGroupNamespace(native, snapId);
  });
}

/**
 * Switches the handle to a snapshot by id, whatever its namespace (a group snapshot's included): reads and
 * diffIterate then see that snapshot. Implements rbd_snap_set_by_id. @throws {NotFoundError} no such snapshot
 */
export function snapSetById(image: Image, snapId: bigint | number): Promise<void> {
  const call = 'rbd_snap_set_by_id';
  const { native, life, spec: object, setSnapshot } = imageInternals(image);
  return life.run(call, object, async () => {
    checkUint(snapId, 'snapId', call, object);
    await binding().imageSnapSetById(native, snapId);
    setSnapshot(`#${snapId}`);
  });
}

/**
 * The id of the image's snapshot that belongs to group snapshot `groupSnap` of group `group` (in pool
 * `poolId`), or null when it has none. Implements rbd_snap_list and rbd_snap_get_group_namespace.
 */
export async function groupSnapIdOf(image: Image, group: { poolId: number; name: string }, groupSnap: string): Promise<bigint | null> {
  for (const s of await image.snapList()) {
    if (s.namespace !== 'group') continue;
    const ns = await snapGroupNamespace(image, s.id);
    if (ns.poolId === group.poolId && ns.group === group.name && ns.groupSnap === groupSnap) return s.id;
  }
  return null;
}
