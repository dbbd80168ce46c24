// The copy path on sparse disks (issue 20): across clusters, on Ceph's default features (object map, fast
// diff: extents answered from the object map) and on layering + deep-flatten (no object map: the image's
// data objects listed from the pool), byte-exact; the target's holes stay holes; a 1 TiB disk holding a few MiB copies. On a test
// bed of this file's own, so the leftovers probe sees exactly what the runs made.
import { randomBytes } from 'node:crypto';
import { Cluster } from 'ceph-rbd-napi';
import { afterAll, describe, expect, it } from 'vitest';
import { allocatedExtents } from '../../src/coordinator/extents.js';
import type { CoordinatorEvent } from '../../src/coordinator/index.js';
import { leftoversOf, producedBy } from '../support/leftovers.js';
import { ownTestbed } from '../support/own-bed.js';
import { rbd, uniqueName, type ClusterInfo } from '../support/testbed.js';
import { coordinator, exportMd5, rbdTarget, removeImage, sourceConfig, usedBytes } from './helpers.js';

const env = ownTestbed();
const leftovers = leftoversOf(env);
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const TiB = 1024 * GiB;

const FEATURE_SETS = {
  'Ceph defaults': 'layering,exclusive-lock,object-map,fast-diff,deep-flatten',
  'layering + deep-flatten': 'layering,deep-flatten',
} as const;

/** Disks this file made (removed after it: memstore OSDs hold every byte in RAM). */
const made: Array<{ cluster: ClusterInfo; spec: string }> = [];
afterAll(async () => {
  for (const d of made.splice(0)) await removeImage(d.cluster, d.spec).catch(() => {});
});

/**
 * A disk in `vms`, created by nova with `features`, holding `writes` (offset → bytes) written through an
 * admin connection: pieces smaller than an object, across object boundaries, and far apart.
 */
async function sparseDisk(cluster: ClusterInfo, size: number, features: string, writes: Array<[number, Buffer]>): Promise<string> {
  const name = uniqueName('sparse');
  await rbd(cluster, ['create', `vms/${name}`, '--size', `${size / MiB}M`, '--image-feature', features], 'nova');
  made.push({ cluster, spec: `vms/${name}` });
  const admin = await Cluster.connect({ confPath: cluster.conf, user: 'admin' });
  try {
    const io = await admin.openIoctx('vms');
    const image = await io.openImage(name);
    try {
      for (const [offset, data] of writes) await image.write(offset, data);
      await image.flush();
    } finally {
      await image.close();
      await io.close();
    }
  } finally {
    await admin.close();
  }
  return name;
}

/** Reads `length` bytes at `offset` of `spec` (image@snap) through an admin connection. */
async function readAt(cluster: ClusterInfo, pool: string, image: string, snap: string, ranges: Array<[number, number]>): Promise<Buffer[]> {
  const admin = await Cluster.connect({ confPath: cluster.conf, user: 'admin' });
  try {
    const io = await admin.openIoctx(pool);
    const img = await io.openImage(image, { readOnly: true, snapshot: snap });
    try {
      const out: Buffer[] = [];
      for (const [offset, length] of ranges) out.push(await img.read(offset, length));
      return out;
    } finally {
      await img.close();
      await io.close();
    }
  } finally {
    await admin.close();
  }
}

describe('sparse copy across clusters', () => {
  for (const [set, features] of Object.entries(FEATURE_SETS)) {
    it(`${set}: byte-exact, holes stay holes (target usage follows the data)`, async () => {
      const a = env.clusters.a;
      const b = env.clusters.b;
      const writes: Array<[number, Buffer]> = [
        [4096, randomBytes(8192)],
        [4 * MiB - 1000, randomBytes(3000)],
        [37 * MiB + 12345, randomBytes(2 * MiB)],
        [200 * MiB, randomBytes(5 * MiB)],
        [256 * MiB - 512, randomBytes(512)],
      ];
      const disk = await sparseDisk(a, 256 * MiB, features, writes);
      const before = await exportMd5(a, `vms/${disk}`);
      const nothing = await leftovers.snapshot();
      const events: CoordinatorEvent[] = [];
      const c = coordinator({ source: sourceConfig(a), target: rbdTarget(b) }, events);
      try {
        const result = await c.snapshot(`rbd://${a.fsid}/vms/${disk}`);
        expect(result).toMatchObject({ method: 'copy', sizeBytes: 256 * MiB });
        expect(await exportMd5(b, `images/${result.imageId}@snap`)).toBe(before);
        // Whole 8 MiB objects of the target, at most one per write (some writes share or cross objects).
        const used = await usedBytes(b, `images/${result.imageId}@snap`);
        expect(used).toBeGreaterThan(0);
        expect(used).toBeLessThanOrEqual(6 * 8 * MiB);
        await leftovers.expectUnchanged(nothing, producedBy(events));
        await removeImage(b, `images/${result.imageId}`);
      } finally {
        await c.close();
      }
    }, 180_000);
  }

  for (const [set, features] of Object.entries(FEATURE_SETS)) {
    it(`copies a 1 TiB disk holding a few MiB (${set}): the data where it was, zeros between, little used`, async () => {
      const a = env.clusters.a;
      const b = env.clusters.b;
      const writes: Array<[number, Buffer]> = [
        [0, randomBytes(MiB)],
        [TiB / 2 + 777, randomBytes(3 * MiB)],
        [TiB - 2 * MiB, randomBytes(2 * MiB)],
      ];
      const disk = await sparseDisk(a, TiB, features, writes);
      const nothing = await leftovers.snapshot();
      const events: CoordinatorEvent[] = [];
      const c = coordinator({ source: sourceConfig(a), target: rbdTarget(b) }, events);
      try {
        // No Glance here, so `auto` hashes nothing: the copy's cost is the data's.
        const result = await c.snapshot(`rbd://${a.fsid}/vms/${disk}`);
        expect(result).toMatchObject({ method: 'copy', sizeBytes: TiB, checksums: null });
        const holes: Array<[number, number]> = [
          [MiB, MiB],
          [TiB / 4, 4 * MiB],
          [TiB / 2 - MiB, MiB + 777],
        ];
        const back = await readAt(b, 'images', result.imageId, 'snap', [...writes.map(([o, d]): [number, number] => [o, d.length]), ...holes]);
        for (const [i, [, data]] of writes.entries()) expect(back[i]?.equals(data)).toBe(true);
        for (const zeros of back.slice(writes.length)) expect(zeros.every((x) => x === 0)).toBe(true);
        expect(await usedBytes(b, `images/${result.imageId}@snap`)).toBeLessThanOrEqual(4 * 8 * MiB);
        await leftovers.expectUnchanged(nothing, producedBy(events));
        await removeImage(b, `images/${result.imageId}`);
      } finally {
        await c.close();
      }
    }, 600_000);
  }

  it('allocatedExtents without an object map: the listed objects, clipped to the snapshot; a clone from librbd, its parent data included', async () => {
    const a = env.clusters.a;
    const features = FEATURE_SETS['layering + deep-flatten'];
    // 16 GiB: 4096 objects, the smallest image allocatedExtents lists rather than walks.
    const disk = await sparseDisk(a, 16 * GiB, features, [[3 * 4 * MiB + 100, randomBytes(100)]]);
    const child = uniqueName('sparse-child');
    const admin = await Cluster.connect({ confPath: a.conf, user: 'admin' });
    const io = await admin.openIoctx('vms');
    try {
      const image = await io.openImage(disk);
      try {
        await image.snapCreate('s');
        // After the snapshot: an object the snapshot does not have (listed; it reads as zeros), and one
        // past the snapshot's size (left out).
        await image.write(5 * 4 * MiB, randomBytes(10));
        await image.resize(32 * GiB);
        await image.write(20 * GiB, randomBytes(10));
        await image.flush();
      } finally {
        await image.close();
      }
      const atSnap = await io.openImage(disk, { readOnly: true, snapshot: 's' });
      try {
        expect(await allocatedExtents(atSnap)).toEqual([
          { offset: 12 * MiB, length: 4 * MiB, exists: true },
          { offset: 20 * MiB, length: 4 * MiB, exists: true },
        ]);
      } finally {
        await atSnap.close();
      }
      await io.clone(disk, 's', io, child, { format: 2, features: ['layering', 'deep-flatten'] });
      made.push({ cluster: a, spec: `vms/${child}` });
      const clone = await io.openImage(child);
      try {
        await clone.write(7 * 4 * MiB, randomBytes(10));
        await clone.flush();
        // The listing would see the clone's object 7 only; librbd's walk includes the parent's object 3.
        expect(await allocatedExtents(clone)).toEqual([
          { offset: 12 * MiB, length: 4 * MiB, exists: true },
          { offset: 28 * MiB, length: 4 * MiB, exists: true },
        ]);
      } finally {
        await clone.close();
      }
    } finally {
      await removeImage(a, `vms/${child}`);
      await io.close();
      await admin.close();
    }
  }, 180_000);
});
