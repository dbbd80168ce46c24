// A glance-api of this file's own, configured as some deployments are (show_multiple_locations = False),
// and then stopped: mid-upload, and under a client that keeps knocking at its closed port.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GlanceClient,
  GlanceForbidden,
  GlanceUnavailable,
  LocationsNotAllowed,
  type GlanceImage,
} from '../../src/glance/index.js';
import { startGlance, stopGlance, type GlanceInfo } from '../../scripts/testbed.mjs';
import { leftoversOf } from '../support/leftovers.js';
import { ownTestbed } from '../support/own-bed.js';
import { ceph, rbdJson, uniqueName, type ClusterInfo } from '../support/testbed.js';
import { glanceClient, makeRbdSnapshot, randomData, removeRbdImage } from './helpers.js';

// Clusters of its own too: the leftovers probe lists whole pools, and a stopped Glance's partial image
// must be the only change in them.
const env = ownTestbed();
const leftovers = leftoversOf(env);
let cluster: ClusterInfo;
const MiB = 1024 * 1024;

async function evictWatchers(c: ClusterInfo, spec: string): Promise<void> {
  const status = await rbdJson<{ watchers: Array<{ address: string }> }>(c, ['status', spec]).catch(() => null);
  for (const w of status?.watchers ?? []) {
    await ceph(c, ['osd', 'blocklist', 'add', w.address]);
  }
}

let dir: string;
let glance: GlanceInfo;
let client: GlanceClient;
let stopped = false;

beforeAll(async () => {
  cluster = env.clusters.a;
  dir = await mkdtemp(join(tmpdir(), 'snapstore-own-glance-'));
  glance = await startGlance(join(dir, 'glance'), cluster.dir, { multipleLocations: false });
  client = glanceClient(glance.url, { retries: 3, retryDelayMs: 50 });
});

afterAll(async () => {
  await client?.close();
  if (dir) {
    await stopGlance(join(dir, 'glance'));
    await rm(dir, { recursive: true, force: true });
  }
});

// Sequential: the last tests stop this Glance.
describe.sequential('GlanceClient against a glance-api of its own', () => {
  it('gets LocationsNotAllowed (a GlanceForbidden) when show_multiple_locations is False', async () => {
    const name = uniqueName('glance-noloc');
    const nothing = await leftovers.snapshot({ glance: [glance.url] });
    let image: GlanceImage | undefined;
    try {
      const url = await makeRbdSnapshot(cluster, name, randomData(MiB));
      image = await client.createImage({ name, diskFormat: 'raw', containerFormat: 'bare' });
      const err = await client.addLocation(image.id, url, { expectedFsid: cluster.fsid }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LocationsNotAllowed);
      expect(err).toBeInstanceOf(GlanceForbidden);
      expect(err).toMatchObject({ code: 'GLANCE_LOCATIONS_NOT_ALLOWED', status: 403, method: 'PATCH' });
      const after = await client.getImage(image.id);
      expect(after.status).toBe('queued');
      expect(after).not.toHaveProperty('locations');
    } finally {
      if (image) await client.deleteImage(image.id);
      await removeRbdImage(cluster, `images/${name}`);
    }
    await leftovers.expectUnchanged(nothing);
  });

  // What a dying Glance had written is Glance's: the client cannot remove it (Glance's own rbd store made
  // images/<id> and died holding it open). The test shows it is there, then removes it by hand as an operator.
  it('fails an upload with GlanceUnavailable when the server stops mid-upload, without sending the data again', async () => {
    // Glance itself is not in the probe's scope: it is stopped by the end.
    const nothing = await leftovers.snapshot();
    const image = await client.createImage({
      name: uniqueName('glance-midstop'),
      diskFormat: 'raw',
      containerFormat: 'bare',
    });
    let yielded = 0;
    let stopping: Promise<void> | undefined;
    async function* source() {
      for (let i = 0; i < 1024; i++) {
        if (i === 16) {
          stopping = stopGlance(join(dir, 'glance')).then(() => {
            stopped = true;
          });
        }
        yielded++;
        yield randomData(MiB);
      }
    }
    try {
      const err = await client.upload(image.id, source(), { size: 1024 * MiB }).catch((e: unknown) => e);
      await stopping;
      expect(stopped).toBe(true);
      expect(err).toBeInstanceOf(GlanceUnavailable);
      expect(err).toMatchObject({ code: 'GLANCE_UNAVAILABLE', method: 'PUT', path: `/v2/images/${image.id}/file` });
      // Never retried: one attempt, and the source was not read again from the start.
      expect((err as GlanceUnavailable).context.attempts).toBe(1);
      expect(yielded).toBeLessThan(1024);
      // The partial image the dead Glance left: one, under the image's id, with no snapshot (never finished).
      await leftovers.expectUnchanged(nothing, [{ rbd: { fsid: cluster.fsid, pool: 'images', image: image.id }, snapshots: [], meta: [] }]);
    } finally {
      await stopping;
      // Evict the dead Glance's watch (as an operator would, by blocklisting that client), remove the image.
      await evictWatchers(cluster, `images/${image.id}`);
      await removeRbdImage(cluster, `images/${image.id}`);
    }
  });

  it('retries a refused connection with backoff, then throws GlanceUnavailable counting the attempts', async () => {
    expect(stopped).toBe(true);
    const started = Date.now();
    const err = await client.getImage('whatever').catch((e: unknown) => e);
    const elapsed = Date.now() - started;
    expect(err).toBeInstanceOf(GlanceUnavailable);
    expect(err).toMatchObject({ code: 'GLANCE_UNAVAILABLE', method: 'GET' });
    expect((err as GlanceUnavailable).context).toMatchObject({ attempts: 4, failure: 'refused', errorCode: 'ECONNREFUSED' });
    // Three backoffs of at least 0.75 × 50, 100, 200 ms.
    expect(elapsed).toBeGreaterThanOrEqual(262);

    // Refused means nothing was sent, so even a POST is retried...
    const post = await client.createImage({ name: 'never' }).catch((e: unknown) => e);
    expect((post as GlanceUnavailable).context.attempts).toBe(4);
    // ...but never an upload.
    const put = await client.upload('whatever', Buffer.alloc(16)).catch((e: unknown) => e);
    expect(put).toBeInstanceOf(GlanceUnavailable);
    expect((put as GlanceUnavailable).context.attempts).toBe(1);

    const once = new GlanceClient({ endpoint: glance.url, retries: 0 });
    const single = await once.getImage('whatever').catch((e: unknown) => e);
    await once.close();
    expect((single as GlanceUnavailable).context.attempts).toBe(1);
  });
});
