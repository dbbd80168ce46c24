// What the test bed's Glance is not configured for, on a real glance-api of this file's own: an image size
// cap (413 for larger uploads), two stores by id (multi-store `enabled_backends`: `ceph`, the rbd store,
// and `local`, a file store), and byte ranges, which Glance's file store serves (its rbd store does not).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GlanceTooLarge, type GlanceClient, type GlanceImage } from '../../src/glance/index.js';
import type { Snapshot } from '../support/leftovers.js';
import { uniqueName } from '../support/testbed.js';
import { collect, countingDispatcher, glanceClient, makeRbdSnapshot, ownGlance, randomData, removeRbdImage } from './helpers.js';

const MiB = 1024 * 1024;
const CAP = 4 * MiB;

// On pools of its own (own-pools.ts), as a user restricted to them: the probe lists them whole, with this
// Glance's image list and its file store's directory, before the first case and after the last.
const own = ownGlance('glance-cfg', { sizeCap: CAP, multiStore: true });
const localDir = () => join(own.info().dir, 'local');
let before: Snapshot | undefined;
const clients: GlanceClient[] = [];
const made: string[] = [];

function client(options: Parameters<typeof glanceClient>[1] = {}): GlanceClient {
  const c = glanceClient(own.info().url, options);
  clients.push(c);
  return c;
}

async function queued(c: GlanceClient, what: string): Promise<GlanceImage> {
  const image = await c.createImage({ name: uniqueName(what), diskFormat: 'raw', containerFormat: 'bare' });
  made.push(image.id);
  return image;
}

/** The image once Glance is done with a request it saw fail (`saving` until it notices). */
async function settled(c: GlanceClient, id: string): Promise<GlanceImage> {
  let image = await c.getImage(id);
  for (let i = 0; i < 300 && image.status === 'saving'; i++) {
    await new Promise((r) => setTimeout(r, 100));
    image = await c.getImage(id);
  }
  return image;
}

beforeAll(async () => {
  before = await own.leftovers.snapshot({ dirs: [localDir()] });
});

afterAll(async () => {
  if (before) {
    const c = client();
    // Deleting through Glance removes the data from whichever store holds it.
    for (const id of made) await c.deleteImage(id, { ignoreMissing: true });
  }
  await Promise.all(clients.map((c) => c.close()));
  if (before) await own.leftovers.expectUnchanged(before);
});

describe('GlanceClient against a real glance-api with image_size_cap and two stores', () => {
  it('maps 413 (image_size_cap) to GlanceTooLarge and sends the upload once', async () => {
    const counting = countingDispatcher();
    const c = client({ dispatcher: counting.dispatcher, retries: 5 });
    try {
      const image = await queued(c, 'glance-cap');
      const before = counting.requests();
      const err = await c.upload(image.id, randomData(CAP + MiB), { size: CAP + MiB }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GlanceTooLarge);
      expect(err).toMatchObject({ code: 'GLANCE_TOO_LARGE', status: 413, method: 'PUT', path: `/v2/images/${image.id}/file` });
      expect(counting.requests() - before).toBe(1);
      // Glance kept none of it.
      expect(await settled(c, image.id)).toMatchObject({ status: 'queued', size: null });
    } finally {
      await counting.close();
    }
  });

  it('uploads into the store its storeId names (x-image-meta-store): `local` keeps a file, `ceph` an RBD image', async () => {
    const data = randomData(MiB + 17);
    const local = client({ storeId: 'local' });
    const ceph = client({ storeId: 'ceph' });
    const inPool = await own.poolImages();
    const inLocal = await queued(local, 'glance-store-local');
    const inCeph = await queued(ceph, 'glance-store-ceph');
    await local.upload(inLocal.id, data, { size: data.length });
    await ceph.upload(inCeph.id, data, { size: data.length });
    expect(await local.getImage(inLocal.id)).toMatchObject({ status: 'active', size: data.length, stores: 'local' });
    expect(await ceph.getImage(inCeph.id)).toMatchObject({ status: 'active', size: data.length, stores: 'ceph' });
    expect(existsSync(join(localDir(), inLocal.id))).toBe(true);
    // The own pool, listed whole: the two uploads added exactly the `ceph` one's data.
    expect(await own.poolImages()).toEqual([...inPool, inCeph.id].sort());
  });

  it('names the store in a PATCH-added location; Glance records the image in that store', async () => {
    const cluster = own.cluster();
    const name = uniqueName('glance-store-loc');
    const inPool = await own.poolImages();
    const url = await makeRbdSnapshot(cluster, name, randomData(MiB), own.pools.images);
    const c = client({ storeId: 'ceph' });
    try {
      const image = await queued(c, 'glance-store-loc');
      const added = await c.addLocation(image.id, url, { expectedFsid: cluster.fsid });
      expect(added.api).toBe('patch');
      const after = await c.getImage(image.id);
      expect(after).toMatchObject({ status: 'active', stores: 'ceph' });
      expect(after.locations).toEqual([{ url, metadata: { store: 'ceph' } }]);
      // The image is Glance's now: deleting it removes the RBD image too (nothing for the test to remove).
      await c.deleteImage(image.id);
      made.splice(made.indexOf(image.id), 1);
      expect(await own.poolImages()).toEqual(inPool);
    } finally {
      await removeRbdImage(cluster, `${own.pools.images}/${name}`);
    }
  });

  it('reads a byte range as Glance serves it (206 from the file store), without cutting it itself', async () => {
    const data = randomData(3 * MiB);
    const local = client({ storeId: 'local' });
    const image = await queued(local, 'glance-range');
    await local.upload(image.id, data, { size: data.length });
    const [start, end] = [MiB + 5, 2 * MiB + 99];
    const ranged = await local.download(image.id, { range: { start, end }, rangeFallback: false });
    expect(ranged.rangeServedBy).toBe('server');
    expect(ranged.length).toBe(end - start + 1);
    expect((await collect(ranged.stream)).equals(data.subarray(start, end + 1))).toBe(true);
  });
});
