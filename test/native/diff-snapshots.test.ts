// rbd_diff_iterate2 between two snapshots, as incremental snapshots use it: an image opened at the newer
// snapshot, diffed from the older one, reports what was written (exists) and what was discarded or zeroed
// (not exists) in between — and nothing written after the newer snapshot.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as rbd from 'ceph-rbd-napi';
import { ownPools } from '../support/own-pools.js';
import { testbed, uniqueName } from '../support/testbed.js';
import { connect, destroyImage, MiB } from './helpers.js';

const pools = ownPools('napi-diff', { clusters: () => [testbed().clusters.a] });
let cluster: rbd.Cluster;
let io: rbd.Ioctx;

beforeAll(async () => {
  cluster = await connect(testbed().clusters.a);
  io = await cluster.openIoctx(pools.vms);
});
afterAll(async () => {
  await io?.close();
  await cluster?.close();
});

describe('diffIterate between snapshots', () => {
  it('reports writes and discards between two snapshots of an image opened at the newer one', async () => {
    const before = await pools.leftovers.snapshot();
    const name = uniqueName('diff');
    await io.createImage(name, 32 * MiB, { features: ['layering', 'exclusive-lock', 'object-map', 'fast-diff'] });
    try {
      const image = await io.openImage(name);
      try {
        await image.write(0, Buffer.alloc(8 * MiB, 0x11));
        await image.snapCreate('old');
        await image.write(16 * MiB, Buffer.alloc(MiB, 0x22));
        await image.write(MiB, Buffer.alloc(4096, 0x33));
        await image.discard(4 * MiB, 4 * MiB);
        await image.snapCreate('new');
        // After `new`: not part of the diff between the two snapshots.
        await image.write(24 * MiB, Buffer.alloc(MiB, 0x44));
      } finally {
        await image.close();
      }
      const atNew = await io.openImage(name, { readOnly: true, snapshot: 'new' });
      try {
        const diff = (await atNew.diffIterate({ fromSnapshot: 'old' })).sort((x, y) => x.offset - y.offset);
        expect(diff).toEqual([
          { offset: MiB, length: 4096, exists: true },
          { offset: 4 * MiB, length: 4 * MiB, exists: false },
          { offset: 16 * MiB, length: MiB, exists: true },
        ]);
      } finally {
        await atNew.close();
      }
    } finally {
      await destroyImage(io, name);
    }
    await pools.leftovers.expectUnchanged(before);
  });
});
