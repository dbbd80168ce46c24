// Registering RBD locations made with the rbd CLI on the real glance-api (image API 2.16: the PATCH path),
// with and without validation data, and the client-side fsid guard Glance itself does not have.
import { createHash } from 'node:crypto';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  type GlanceError,
  GlanceInvalidLocation,
  GlanceNoData,
  LocationFsidMismatch,
  assertRbdLocationFsid,
  parseRbdUrl,
  type GlanceClient,
} from '../../src/glance/index.js';
import type { Snapshot } from '../support/leftovers.js';
import { testbed, uniqueName } from '../support/testbed.js';
import {
  collect,
  countingDispatcher,
  glanceClient,
  makeRbdSnapshot,
  md5,
  glanceTestFile,
  randomData,
  removeRbdImage,
  sha512,
} from './helpers.js';

const env = testbed();
const cluster = env.clusters.a;
const MiB = 1024 * 1024;

// A glance-api of this file's own on pools of its own on cluster a, as a user whose caps name only them:
// the RBD images of this file live in its own `images` pool, listed whole by the leftovers probe with the
// own Glance's image list (the shared `images` pool and Glance change under other files meanwhile).
const { own, client: clientOf, cleanup } = glanceTestFile('glance-loc');
const pools = own.pools;
const POOL = () => pools.images;
let client: GlanceClient;
beforeAll(() => {
  client = clientOf();
});

let before: Snapshot;
// The own pools alone, for checks inside a case (the helper's probe, with Glance, runs after it).
beforeEach(async () => {
  before = await pools.leftovers.snapshot();
});

async function queuedImage(prefix: string) {
  const image = await client.createImage({ name: uniqueName(prefix), diskFormat: 'raw', containerFormat: 'bare' });
  cleanup.image(image.id);
  return image;
}

describe('GlanceClient.addLocation (real glance-api, PATCH API)', () => {
  it('registers an rbd snapshot made with the rbd CLI: image active, right size, downloads the same bytes', async () => {
    const name = uniqueName('glance-loc');
    cleanup.rbdImage(`${POOL()}/${name}`);
    const data = randomData(12 * MiB + 4096);
    const url = await makeRbdSnapshot(cluster, name, data, POOL());
    const image = await queuedImage('glance-loc');

    const result = await client.addLocation(image.id, url, { expectedFsid: cluster.fsid, metadata: { origin: 'test' } });
    expect(result.api).toBe('patch');
    expect(result.validationData).toEqual({ status: 'not-requested' });
    expect(result.image).toMatchObject({ id: image.id, status: 'active', size: data.length, direct_url: url });
    expect(result.image.locations).toEqual([{ url, metadata: { origin: 'test' } }]);
    expect(result.image.checksum).toBeNull();

    const download = await client.download(image.id);
    expect((await collect(download.stream)).equals(data)).toBe(true);

    // Deleting the Glance image removes the RBD image behind the location (Glance's rbd store does): the
    // own pools are as before the case.
    await client.deleteImage(image.id);
    await pools.leftovers.expectUnchanged(before);
  });

  it('records checksum and sha512 given as validation data while the image is queued', async () => {
    const name = uniqueName('glance-locval');
    cleanup.rbdImage(`${POOL()}/${name}`);
    const data = randomData(4 * MiB);
    const url = await makeRbdSnapshot(cluster, name, data, POOL());
    const image = await queuedImage('glance-locval');

    const result = await client.addLocation(image.id, url, {
      checksum: md5(data),
      osHashAlgo: 'sha512',
      osHashValue: sha512(data),
    });
    expect(result.validationData).toEqual({ status: 'set' });
    const stored = await client.getImage(image.id);
    expect(stored).toMatchObject({ status: 'active', checksum: md5(data), os_hash_algo: 'sha512' });
    expect(stored.os_hash_value).toBe(sha512(data));
  });

  it('registers the location anyway when Glance refuses the hashes (wrong algorithm), and says why', async () => {
    const name = uniqueName('glance-locrej');
    cleanup.rbdImage(`${POOL()}/${name}`);
    const data = randomData(MiB);
    const url = await makeRbdSnapshot(cluster, name, data, POOL());
    const image = await queuedImage('glance-locrej');

    const sha256 = createHash('sha256').update(data).digest('hex');
    const result = await client.addLocation(image.id, url, { osHashAlgo: 'sha256', osHashValue: sha256 });
    expect(result.validationData).toMatchObject({ status: 'rejected', httpStatus: 409 });
    expect(result.validationData.status === 'rejected' && result.validationData.reason).toMatch(
      /os_hash_algo must be sha512, not sha256/,
    );
    expect(result.image).toMatchObject({ status: 'active', size: data.length, os_hash_algo: null });
    expect(result.image.locations?.map((l) => l.url)).toEqual([url]);
  });

  it('reports, without throwing, that Zed will not take a checksum by PATCH after the location', async () => {
    const name = uniqueName('glance-locmd5');
    cleanup.rbdImage(`${POOL()}/${name}`);
    const data = randomData(MiB);
    const url = await makeRbdSnapshot(cluster, name, data, POOL());
    const image = await queuedImage('glance-locmd5');

    // md5 alone cannot go in validation_data (Glance's schema wants both os_hash fields), so the client
    // registers the location and then tries to set the checksum attribute, which Zed refuses (403).
    const result = await client.addLocation(image.id, url, { checksum: md5(data) });
    expect(result.validationData).toMatchObject({ status: 'rejected', httpStatus: 403 });
    expect(result.validationData.status === 'rejected' && result.validationData.reason).toMatch(/checksum.*read-only/);
    expect(result.image).toMatchObject({ status: 'active', size: data.length, checksum: null });
    expect((await client.getImage(image.id)).locations?.map((l) => l.url)).toEqual([url]);
  });

  it('turns a download whose registered RBD snapshot was removed behind Glance into GlanceNoData', async () => {
    const name = uniqueName('glance-locgone');
    cleanup.rbdImage(`${POOL()}/${name}`);
    const url = await makeRbdSnapshot(cluster, name, randomData(2 * MiB), POOL());
    const image = await queuedImage('glance-locgone');
    await client.addLocation(image.id, url, { expectedFsid: cluster.fsid });
    // As an operator (or a buggy gc) would: unprotect, remove the snapshot, remove the image.
    await removeRbdImage(cluster, `${POOL()}/${name}`);
    await pools.leftovers.expectUnchanged(before);

    const err = await client.download(image.id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GlanceNoData);
    expect(err).toMatchObject({ code: 'GLANCE_NO_DATA', status: 204 });
    // The record is still there and still claims to be active: only the client's check caught it.
    expect((await client.getImage(image.id)).status).toBe('active');
  });

  it('maps a location whose RBD image does not exist to GlanceInvalidLocation (400), image still queued', async () => {
    const image = await queuedImage('glance-locmiss');
    const missing = uniqueName('glance-nosuch');
    const url = `rbd://${cluster.fsid}/${POOL()}/${missing}/snap`;
    const err = await client.addLocation(image.id, url).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GlanceInvalidLocation);
    expect(err).toMatchObject({ code: 'GLANCE_INVALID_LOCATION', status: 400, method: 'PATCH' });
    expect((err as GlanceError).body).toMatch(/Invalid location/);
    const after = await client.getImage(image.id);
    expect(after.status).toBe('queued');
    expect(after.locations).toEqual([]);
    await pools.leftovers.expectUnchanged(before);
  });

  it('refuses an rbd location on another cluster before sending any request', async () => {
    const counting = countingDispatcher();
    const guarded = glanceClient(own.info().url, { dispatcher: counting.dispatcher });
    try {
      const image = await queuedImage('glance-fsid');
      const other = `rbd://${env.clusters.b.fsid}/images/whatever/snap`;
      const err = await guarded.addLocation(image.id, other, { expectedFsid: cluster.fsid }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LocationFsidMismatch);
      expect(err).toMatchObject({
        code: 'GLANCE_LOCATION_FSID_MISMATCH',
        expectedFsid: cluster.fsid,
        actualFsid: env.clusters.b.fsid,
      });
      expect(counting.requests()).toBe(0);
      // Glance itself would have accepted it (it ignores the fsid): the image is untouched.
      expect(await client.getImage(image.id)).toMatchObject({ status: 'queued', locations: [] });
    } finally {
      await counting.close();
    }
  });
});

describe('rbd location parsing', () => {
  it('parses rbd://fsid/pool/image/snap percent-decoded, and the legacy rbd://image', () => {
    expect(parseRbdUrl('rbd://f00/images/a%2Fb%20c/snap')).toEqual({
      fsid: 'f00',
      pool: 'images',
      image: 'a/b c',
      snapshot: 'snap',
    });
    expect(parseRbdUrl('rbd://only-image')).toEqual({ fsid: null, pool: null, image: 'only-image', snapshot: null });
    expect(parseRbdUrl('rbd://a/b/c')).toBeNull();
    expect(parseRbdUrl('rbd://a//c/d')).toBeNull();
    expect(parseRbdUrl('file:///var/lib/glance/x')).toBeNull();
    expect(parseRbdUrl('rbd://%E0%A4%A/p/i/s')).toBeNull();
  });

  it('accepts the expected fsid in any case and refuses others, fsid-less and non-rbd URLs', () => {
    const fsid = 'd0a0e119-f3c4-462a-b09f-a64ccff35b7f';
    expect(() => assertRbdLocationFsid(`rbd://${fsid.toUpperCase()}/images/x/snap`, fsid)).not.toThrow();
    expect(() => assertRbdLocationFsid(`rbd://${fsid.replace('d0', 'ee')}/images/x/snap`, fsid)).toThrow(
      LocationFsidMismatch,
    );
    expect(() => assertRbdLocationFsid('rbd://x', fsid)).toThrow(LocationFsidMismatch);
    expect(() => assertRbdLocationFsid('file:///tmp/x', fsid)).toThrow(LocationFsidMismatch);
  });
});
