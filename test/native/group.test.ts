// RBD groups on a real cluster: group create/remove/list, image add/remove/list, group snapshots, and
// reading an image at a group snapshot by id — including what Pacific refuses (cloning a group snapshot by
// name, opening an image at a group snapshot's name), which is why snapstore copies group snapshots.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as rbd from 'ceph-rbd-napi';
import { testbed, uniqueName } from '../support/testbed.js';
import { connect, destroyImage, MiB } from './helpers.js';

const env = testbed();
const A = env.clusters.a;
const G = uniqueName('napi-group');
const IMG = [uniqueName('napi-gimg'), uniqueName('napi-gimg')];

let cluster: rbd.Cluster;
let io: rbd.Ioctx;

beforeAll(async () => {
  cluster = await connect(A);
  io = await cluster.openIoctx('vms');
  for (const name of IMG) await io.createImage(name, 8 * MiB, { features: ['layering', 'exclusive-lock', 'object-map', 'fast-diff', 'deep-flatten'] });
});

afterAll(async () => {
  await rbd.groupRemove(io, G).catch(() => {});
  for (const name of IMG) await destroyImage(io, name);
  // Nothing left: no group of that name, no image.
  expect(await rbd.groupList(io)).not.toContain(G);
  const images = await io.listImages();
  for (const name of IMG) expect(images).not.toContain(name);
  await io?.close();
  await cluster?.close();
});

async function write(name: string, byte: number): Promise<void> {
  const img = await io.openImage(name);
  try {
    await img.write(0, Buffer.alloc(MiB, byte));
  } finally {
    await img.close();
  }
}

describe('groups', () => {
  it('create, add images, snapshot them together, read each at the group snapshot by id, remove', async () => {
    await rbd.groupCreate(io, G);
    await expect(rbd.groupCreate(io, G)).rejects.toBeInstanceOf(rbd.ExistsError);
    expect(await rbd.groupList(io)).toContain(G);
    for (const name of IMG) await rbd.groupImageAdd(io, G, io, name);
    expect((await rbd.groupImageList(io, G)).map((i) => [i.name, i.state]).sort()).toEqual(IMG.map((n) => [n, 'attached']).sort());

    for (const name of IMG) await write(name, 1);
    await rbd.groupSnapCreate(io, G, 'gs1');
    expect(await rbd.groupSnapList(io, G)).toEqual([{ name: 'gs1', state: 'complete' }]);
    await expect(rbd.groupSnapCreate(io, G, 'gs1')).rejects.toBeInstanceOf(rbd.ExistsError);
    for (const name of IMG) await write(name, 2);

    for (const name of IMG) {
      const img = await io.openImage(name, { readOnly: true });
      try {
        const group = await rbd.imageGroup(img);
        expect(group?.name).toBe(G);
        const snaps = await img.snapList();
        const gsnap = snaps.find((s) => s.namespace === 'group');
        expect(gsnap).toBeDefined();
        const ns = await rbd.snapGroupNamespace(img, gsnap!.id);
        expect(ns).toEqual({ poolId: group!.poolId, group: G, groupSnap: 'gs1' });
        const id = await rbd.groupSnapIdOf(img, group!, 'gs1');
        expect(id).toBe(gsnap!.id);
        // The head has the second write; the group snapshot the first.
        expect((await img.read(0, 16))[0]).toBe(2);
        await rbd.snapSetById(img, id!);
        expect(img.snapshot).toBe(`#${id}`);
        expect((await img.read(0, 16))[0]).toBe(1);
        const extents = await img.diffIterate({ wholeObject: true });
        expect(extents.some((e) => e.exists !== false)).toBe(true);
        // A group snapshot has no user-namespace name: opening or cloning "at" it finds nothing (Pacific).
        await expect(io.openImage(name, { readOnly: true, snapshot: gsnap!.name })).rejects.toBeInstanceOf(rbd.NotFoundError);
        await expect(io.clone(name, gsnap!.name, io, `${name}-clone`)).rejects.toBeInstanceOf(rbd.RbdError);
        await expect(rbd.snapSetById(img, 999999n)).rejects.toBeInstanceOf(rbd.NotFoundError);
      } finally {
        await img.close();
      }
    }
    expect(await io.listImages()).not.toContain(`${IMG[0]}-clone`);

    await rbd.groupSnapRemove(io, G, 'gs1');
    await expect(rbd.groupSnapRemove(io, G, 'gs1')).rejects.toBeInstanceOf(rbd.NotFoundError);
    expect(await rbd.groupSnapList(io, G)).toEqual([]);
    await rbd.groupImageRemove(io, G, io, IMG[0]!);
    // Taking out an image that is not in the group again is no error (librbd answers 0): undo can repeat it.
    await rbd.groupImageRemove(io, G, io, IMG[0]!);
    expect((await rbd.groupImageList(io, G)).map((i) => i.name)).toEqual([IMG[1]]);
    await rbd.groupRemove(io, G);
    expect(await rbd.groupList(io)).not.toContain(G);
    // Removing the group took its images out of it; their group snapshots went with it.
    for (const name of IMG) {
      const img = await io.openImage(name, { readOnly: true });
      try {
        expect(await rbd.imageGroup(img)).toBeNull();
        expect((await img.snapList()).filter((s) => s.namespace === 'group')).toEqual([]);
      } finally {
        await img.close();
      }
    }
  });

  it('typed errors: no such group, bad names, an image in two groups', async () => {
    await expect(rbd.groupSnapCreate(io, `${G}-none`, 's')).rejects.toBeInstanceOf(rbd.NotFoundError);
    // Pacific lists a group that does not exist as empty.
    expect(await rbd.groupImageList(io, `${G}-none`)).toEqual([]);
    await expect(rbd.groupCreate(io, '')).rejects.toBeInstanceOf(rbd.InvalidArgumentError);
    await expect(rbd.groupImageAdd(io, `${G}-none`, io, IMG[0]!)).rejects.toBeInstanceOf(rbd.NotFoundError);
    await rbd.groupCreate(io, G);
    await rbd.groupCreate(io, `${G}-2`);
    try {
      await rbd.groupImageAdd(io, G, io, IMG[0]!);
      await expect(rbd.groupImageAdd(io, `${G}-2`, io, IMG[0]!)).rejects.toBeInstanceOf(rbd.ExistsError);
    } finally {
      await rbd.groupRemove(io, G);
      await rbd.groupRemove(io, `${G}-2`);
    }
  });
});
