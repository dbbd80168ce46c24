// Glance 30 with two rbd backends on two clusters (`enabled_backends = ceph:rbd, local:file, second:rbd`,
// glance-api.sh --multi-store --rbd-store) behind a real Keystone, with image_size_cap set: a snapshot on
// each cluster lands in its cluster's store id (POST /locations has no store field: Glance finds it from
// the URL); an upload above the cap answers 413; a location above the cap fails in Glance's location task,
// which the client reports (GLANCE_LOCATION_IMPORT_FAILED) instead of taking the 202 for success.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GlanceLocationImportFailed, GlanceTooLarge, type GlanceClient } from '../../src/glance/index.js';
import { coordinator, rbdTarget, sourceConfig } from '../coordinator/helpers.js';
import { randomData, removeRbdImage } from '../glance/helpers.js';
import { deleteGlanceImage, glanceImage, glanceOf, startKeystoneBed, stopKeystoneBed, type KeystoneBed } from '../keystone/helpers.js';
import { ownPools } from '../support/own-pools.js';
import { testbed, uniqueName, type ClusterInfo } from '../support/testbed.js';
import { diskWith, ensureTrixieRoot, novaClient } from './helpers.js';

const clusters = () => testbed().clusters;
const pools = ownPools('g30-ms');
const SIZE_CAP = 48 << 20;
let bed: KeystoneBed | undefined;

beforeAll(async () => {
  await ensureTrixieRoot();
  const { a, b } = clusters();
  const second = `second:${pools.images}:${pools.glance(b).user}:${pools.conf(b)}`;
  bed = await startKeystoneBed(a, pools, { glanceArgs: ['--trixie', '--size-cap', String(SIZE_CAP), '--multi-store', '--rbd-store', second] });
}, 900_000);

afterAll(async () => {
  await stopKeystoneBed(bed);
}, 60_000);

function ks(): KeystoneBed {
  if (!bed) throw new Error('no keystone bed');
  return bed;
}

function coordinatorOn(cluster: ClusterInfo, glance: GlanceClient) {
  return coordinator({
    source: { ...sourceConfig(cluster, pools.nova(cluster).user), confPath: pools.conf(cluster), pool: pools.vms },
    target: { ...rbdTarget(cluster, pools.glance(cluster).user), confPath: pools.conf(cluster), pool: pools.images },
    glance,
  });
}

/** A direct snapshot of a fresh disk on `cluster` registered as nova; returns the Glance image id. */
async function snapshotOn(cluster: ClusterInfo, client: GlanceClient, name: string, bytes: number): Promise<string> {
  const source = await diskWith(pools, cluster, name, randomData(bytes));
  const c = coordinatorOn(cluster, client);
  try {
    return (await c.snapshot(source, { mode: 'direct' })).imageId;
  } finally {
    await c.close();
  }
}

describe.sequential('Glance 30 multi-store on two clusters, image_size_cap', () => {
  it('puts a snapshot on cluster a in store `ceph` and one on cluster b in store `second`', async () => {
    const { a, b } = clusters();
    const client = novaClient(ks());
    const names = [uniqueName('g30-ms-a'), uniqueName('g30-ms-b')];
    const ids: string[] = [];
    const before = await pools.leftovers.snapshot(glanceOf(ks()));
    try {
      ids.push(await snapshotOn(a, client, names[0]!, 4 << 20));
      ids.push(await snapshotOn(b, client, names[1]!, 4 << 20));
      const [onA, onB] = await Promise.all(ids.map((id) => client.listLocations(id)));
      expect(onA).toEqual([{ url: `rbd://${a.fsid}/${pools.images}/${ids[0]}/snap`, metadata: { store: 'ceph' } }]);
      expect(onB).toEqual([{ url: `rbd://${b.fsid}/${pools.images}/${ids[1]}/snap`, metadata: { store: 'second' } }]);
      expect((await glanceImage(ks(), ids[0]!))?.stores).toBe('ceph');
      expect((await glanceImage(ks(), ids[1]!))?.stores).toBe('second');
    } finally {
      for (const id of ids) await deleteGlanceImage(ks(), id);
      await client.close();
      await removeRbdImage(a, `${pools.vms}/${names[0]}`);
      await removeRbdImage(b, `${pools.vms}/${names[1]}`);
    }
    await pools.leftovers.expectUnchanged(before);
  }, 240_000);

  it('answers 413 to an upload above image_size_cap; the image stays queued', async () => {
    const client = novaClient(ks());
    const before = await pools.leftovers.snapshot(glanceOf(ks()));
    const image = await client.createImage({ name: uniqueName('g30-413'), diskFormat: 'raw', containerFormat: 'bare' });
    try {
      const err = await client.upload(image.id, randomData(SIZE_CAP + (1 << 20))).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GlanceTooLarge);
      expect((await glanceImage(ks(), image.id))?.status).toBe('queued');
    } finally {
      await deleteGlanceImage(ks(), image.id);
      await client.close();
    }
    await pools.leftovers.expectUnchanged(before);
  }, 120_000);

  it('a snapshot above image_size_cap: the 202 is not taken for success; the task failure is reported and nothing is left', async () => {
    const { a } = clusters();
    const client = novaClient(ks());
    const name = uniqueName('g30-cap');
    const source = await diskWith(pools, a, name, randomData(SIZE_CAP + (8 << 20)));
    const before = await pools.leftovers.snapshot(glanceOf(ks()));
    const c = coordinatorOn(a, client);
    try {
      const err = (await c.snapshot(source, { mode: 'direct' }).catch((e: unknown) => e)) as Error & { code?: string; cause?: unknown };
      expect(err.code).toBe('SNAPSHOT_FAILED');
      expect(err.cause).toBeInstanceOf(GlanceLocationImportFailed);
      expect(err.message).toContain('glance-add-location');
    } finally {
      await c.close();
      await client.close();
    }
    // The run removed its Glance image (queued again by Glance's revert) and its clone.
    await pools.leftovers.expectUnchanged(before);
    await removeRbdImage(a, `${pools.vms}/${name}`);
  }, 180_000);
});
