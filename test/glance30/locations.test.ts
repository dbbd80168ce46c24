// Glance 30 (Epoxy, image API 2.17) for real, from the Debian 13 root, behind a real Keystone: registration
// by `POST /v2/images/{id}/locations` through the coordinator with the member's token plus nova's service
// token, and without it (a typed exit-2 error, nothing left); Glance's background hashing (and `checksums:
// auto` sending none); the GET locations API (the `service` role in the user's own token); 409 while
// another location task holds the image; deleting an image while Glance still hashes it (409, in use).
// 413, image_size_cap and multi-store: multi-store.test.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GlanceConflict, GlanceForbidden, GlanceNotFound, type GlanceClient } from '../../src/glance/index.js';
import { coordinator, rbdTarget, sourceConfig } from '../coordinator/helpers.js';
import { makeRbdSnapshot, randomData, removeRbdImage } from '../glance/helpers.js';
import { deleteGlanceImage, glanceImage, glanceOf, recordingDispatcher, startKeystoneBed, stopKeystoneBed, type KeystoneBed } from '../keystone/helpers.js';
import { ownPools } from '../support/own-pools.js';
import { rbd, rbdJson, testbed, uniqueName } from '../support/testbed.js';
import { diskWith, ensureTrixieRoot, hashedImage, imageGone, md5, memberClient, novaClient, sha512 } from './helpers.js';

const cluster = testbed().clusters.a;
const pools = ownPools('g30-loc', { clusters: () => [cluster] });
let bed: KeystoneBed | undefined;

beforeAll(async () => {
  await ensureTrixieRoot();
  bed = await startKeystoneBed(cluster, pools, { glanceArgs: ['--trixie', '--workers', '2'] });
}, 900_000);

afterAll(async () => {
  await stopKeystoneBed(bed);
}, 60_000);

function ks(): KeystoneBed {
  if (!bed) throw new Error('no keystone bed');
  return bed;
}

function coordinatorFor(glance: GlanceClient) {
  return coordinator({
    source: { ...sourceConfig(cluster, pools.nova(cluster).user), confPath: pools.conf(cluster), pool: pools.vms },
    target: { ...rbdTarget(cluster, pools.glance(cluster).user), confPath: pools.conf(cluster), pool: pools.images },
    glance,
  });
}

describe.sequential('Glance 30 (image API 2.17) behind Keystone', () => {
  it('lists image API 2.17 as CURRENT, so the client registers by POST /locations', async () => {
    const client = memberClient(ks(), 'nova');
    try {
      expect((await client.versions()).find((v) => v.id === 'v2.17')?.status).toBe('CURRENT');
      expect(await client.supportsLocationsApi()).toBe(true);
    } finally {
      await client.close();
    }
  });

  it('registers a direct snapshot by POST with the service token; Glance hashes it afterwards (auto sends no hashes)', async () => {
    const rec = recordingDispatcher();
    const client = memberClient(ks(), 'nova', { dispatcher: rec.dispatcher });
    const name = uniqueName('g30-reg');
    const data = randomData(12 << 20);
    const source = await diskWith(pools, cluster, name, data);
    const before = await pools.leftovers.snapshot(glanceOf(ks()));
    const c = coordinatorFor(client);
    let imageId: string | undefined;
    try {
      const result = await c.snapshot(source, { mode: 'direct', checksums: 'auto' });
      imageId = result.imageId;
      expect(result.glance?.status).toBe('active');
      // auto: Glance 2.17 hashes a new location itself, so snapstore computed nothing and sent nothing.
      expect(result.checksums).toBeNull();
      const post = rec.sent.filter((s) => s.method === 'POST' && s.path === `/v2/images/${imageId}/locations`);
      expect(post).toHaveLength(1);
      expect(post[0]?.serviceToken).toBeDefined();
      expect(rec.sent.some((s) => s.method === 'PATCH')).toBe(false);

      const hashed = await hashedImage(ks(), imageId);
      expect(hashed).toMatchObject({ checksum: md5(data), os_hash_algo: 'sha512', os_hash_value: sha512(data), size: data.length });
      // GET /locations is for the `service` role in the user's own token (policy fetch_image_location):
      // a member is refused even with a service token beside it.
      expect(await client.listLocations(imageId).catch((e: unknown) => e)).toBeInstanceOf(GlanceForbidden);
    } finally {
      await c.close();
      if (imageId) await deleteGlanceImage(ks(), imageId);
      await client.close();
      await rec.close();
    }
    await pools.leftovers.expectUnchanged(before);
    await removeRbdImage(cluster, `${pools.vms}/${name}`);
  }, 180_000);

  it('without a service token: one-line GLANCE_SERVICE_ROLE_REQUIRED (exit 2) naming the fix, and nothing left', async () => {
    const client = memberClient(ks(), 'none');
    const name = uniqueName('g30-nosvc');
    const source = await diskWith(pools, cluster, name, randomData(4 << 20));
    const before = await pools.leftovers.snapshot(glanceOf(ks()));
    const c = coordinatorFor(client);
    try {
      const err = (await c.snapshot(source, { mode: 'direct' }).catch((e: unknown) => e)) as Error & { code?: string; exitCode?: number };
      expect(err.code).toBe('GLANCE_SERVICE_ROLE_REQUIRED');
      expect(err.exitCode).toBe(2);
      expect(err.message).not.toContain('\n');
      expect(err.message).toMatch(/service token/);
      expect(err.message).toMatch(/`service` role/);
    } finally {
      await c.close();
      await client.close();
    }
    // The Glance image the run made and the clone are removed again.
    await pools.leftovers.expectUnchanged(before);
    await removeRbdImage(cluster, `${pools.vms}/${name}`);
  }, 180_000);

  it('answers 409 to a second location while the first location task holds the image', async () => {
    const client = memberClient(ks(), 'nova');
    const name = uniqueName('g30-409');
    const data = randomData(32 << 20);
    const before = await pools.leftovers.snapshot(glanceOf(ks()));
    const url = await makeRbdSnapshot(cluster, name, data, pools.images);
    const image = await client.createImage({ name, diskFormat: 'raw', containerFormat: 'bare' });
    try {
      // With validation_data Glance hashes before the image turns active (`importing`): the image is busy.
      const first = client.addLocation(image.id, url, { expectedFsid: cluster.fsid, osHashAlgo: 'sha512', osHashValue: sha512(data) });
      const second = await client.addLocation(image.id, url, { expectedFsid: cluster.fsid }).catch((e: unknown) => e);
      expect(second).toBeInstanceOf(GlanceConflict);
      expect(await first).toMatchObject({ api: 'post', validationData: { status: 'deferred' } });
      const hashed = await hashedImage(ks(), image.id);
      expect(hashed).toMatchObject({ status: 'active', os_hash_value: sha512(data), checksum: md5(data) });
      expect(hashed.locations).toHaveLength(1);
    } finally {
      // Glance deletes the RBD image behind its location with the image.
      await deleteGlanceImage(ks(), image.id);
      await client.close();
      await removeRbdImage(cluster, `${pools.images}/${name}`);
    }
    await pools.leftovers.expectUnchanged(before);
  }, 180_000);

  it('as nova itself (its token has the `service` role) registers without a service token, and GET /locations lists the location', async () => {
    const client = novaClient(ks());
    const name = uniqueName('g30-nova');
    const source = await diskWith(pools, cluster, name, randomData(4 << 20));
    const before = await pools.leftovers.snapshot(glanceOf(ks()));
    const c = coordinatorFor(client);
    let imageId: string | undefined;
    try {
      const result = await c.snapshot(source, { mode: 'direct' });
      imageId = result.imageId;
      expect(result.glance?.status).toBe('active');
      const locations = await client.listLocations(imageId);
      expect(locations.map((l) => l.url)).toEqual([`rbd://${cluster.fsid}/${pools.images}/${imageId}/snap`]);
      expect((await glanceImage(ks(), imageId))?.owner).toBe(ks().env.service_project_id);
    } finally {
      await c.close();
      if (imageId) await deleteGlanceImage(ks(), imageId);
      await client.close();
    }
    await pools.leftovers.expectUnchanged(before);
    await removeRbdImage(cluster, `${pools.vms}/${name}`);
  }, 180_000);

  it('deleting an image it still hashes: 409 (in use), or gone already; the hashing task removes image and data', async () => {
    const client = novaClient(ks());
    const name = uniqueName('g30-delhash');
    const before = await pools.leftovers.snapshot(glanceOf(ks()));
    // 32 GiB and thin: Glance reads (and hashes) every byte of it, holes included, which takes a while.
    // The worker hashing answers nothing meanwhile (its green thread never yields): the other worker
    // (--workers 2) answers these calls.
    await rbd(cluster, ['create', '--size', '32G', `${pools.images}/${name}`]);
    await rbd(cluster, ['snap', 'create', `${pools.images}/${name}@snap`]);
    await rbd(cluster, ['snap', 'protect', `${pools.images}/${name}@snap`]);
    const url = `rbd://${cluster.fsid}/${pools.images}/${name}/snap`;
    const image = await client.createImage({ name, diskFormat: 'raw', containerFormat: 'bare' });
    try {
      const added = await client.addLocation(image.id, url, { expectedFsid: cluster.fsid });
      expect(added.image.status).toBe('active');
      expect((await glanceImage(ks(), image.id))?.os_hash_value ?? null).toBeNull();
      // Glance's rbd store cannot remove an image its hashing reader holds open: usually 409 "in use".
      // Yet the delete had removed the snapshot before the image refused: the hashing task's reads then
      // fail with NotFound and the task deletes the image itself (glance bug 2045769's workaround). Which
      // answer the DELETE gets is Glance's race with its own task (on a loaded machine the task was seen
      // to give up and delete the image first: 404); what must hold is the end: image and data gone.
      const answer = await client.deleteImage(image.id).then(
        () => 'deleted',
        (e: unknown) => e,
      );
      if (answer instanceof GlanceConflict) expect(answer.body).toMatch(/in use/);
      else if (answer !== 'deleted') expect(answer).toBeInstanceOf(GlanceNotFound);
      await imageGone(ks(), image.id, 600_000);
      expect(await rbdJson<string[]>(cluster, ['ls', pools.images])).not.toContain(name);
    } finally {
      await deleteGlanceImage(ks(), image.id);
      await client.close();
      await removeRbdImage(cluster, `${pools.images}/${name}`);
    }
    await pools.leftovers.expectUnchanged(before);
  }, 700_000);
});
