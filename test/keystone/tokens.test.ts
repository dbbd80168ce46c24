// Tokens from a real Keystone whose tokens live 15 s, used by the Glance client against a real glance-api
// behind keystonemiddleware: renewal during a snapshot that outlives its first token, one re-issue on a 401,
// and the service token reaching the middleware (which refuses one without the `service` role).
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withFaults } from '../../src/coordinator/faults.js';
import { GlanceClient, GlanceUnauthorized } from '../../src/glance/index.js';
import { OpenStackAuth, type KeystoneAuthOptions } from '../../src/keystone/index.js';
import { coordinator, rbdTarget, sourceConfig } from '../coordinator/helpers.js';
import { makeRbdSnapshot, randomData, removeRbdImage } from '../glance/helpers.js';
import { ownPools } from '../support/own-pools.js';
import { testbed, uniqueName } from '../support/testbed.js';
import {
  deleteGlanceImage,
  diskSnapshots,
  glanceImage,
  glanceOf,
  makeOwnDisk,
  recordingDispatcher,
  revokeToken,
  startKeystoneBed,
  stopKeystoneBed,
  userToken,
  type KeystoneBed,
} from './helpers.js';

const cluster = testbed().clusters.a;
// Disks and Glance's store in pools of this file's own, as users restricted to them: the leftovers probe
// lists both pools whole before and after a case (the shared `images`/`vms` change under other files).
const pools = ownPools('ks-tok', { clusters: () => [cluster] });
const LIFETIME_S = 15;
let bed: KeystoneBed | undefined;

beforeAll(async () => {
  bed = await startKeystoneBed(cluster, pools, { tokenExpiration: LIFETIME_S });
}, 240_000);

afterAll(async () => {
  await stopKeystoneBed(bed);
});

function ks(): KeystoneBed {
  if (!bed) throw new Error('no keystone bed');
  return bed;
}

function memberOptions(): KeystoneAuthOptions {
  const b = ks();
  return { authUrl: b.url, username: 'member', password: b.env.member_password, projectName: 'demo', userDomainName: 'Default', projectDomainName: 'Default' };
}

/** Whether Keystone still takes `token` (GET /v3/auth/tokens validates it). */
async function keystoneAccepts(token: string): Promise<boolean> {
  const b = ks();
  const res = await fetch(`${b.url}/v3/auth/tokens`, { headers: { 'x-auth-token': await userToken(b, 'admin'), 'x-subject-token': token } });
  return res.status === 200;
}

describe.sequential('Keystone tokens used by the Glance client', () => {
  it('renews the token before it expires: a snapshot that outlives its first token still registers', async () => {
    const auth = OpenStackAuth.resolve({ auth: memberOptions(), env: {} });
    expect(auth?.source).toBe('the library option (auth)');
    const rec = recordingDispatcher();
    const endpoint = await auth!.glanceEndpoint();
    expect(endpoint).toEqual({ url: ks().glanceUrl, from: 'catalog' });
    const client = new GlanceClient({ endpoint: endpoint.url, token: auth!, dispatcher: rec.dispatcher });
    const name = uniqueName('ks-renew');
    const source = await makeOwnDisk(pools, cluster, name, 16);
    const before = await pools.leftovers.snapshot(glanceOf(ks()));
    // The snapshot waits before registering the location until the token it started with has expired.
    const opts = withFaults(
      {
        source: { ...sourceConfig(cluster, pools.nova(cluster).user), confPath: pools.conf(cluster), pool: pools.vms },
        target: { ...rbdTarget(cluster, pools.glance(cluster).user), confPath: pools.conf(cluster), pool: pools.images },
        glance: client,
      },
      async (p) => {
        if (p.step === 'glance-add-location' && p.when === 'before') await sleep((LIFETIME_S + 2) * 1000);
      },
    );
    const c = coordinator(opts);
    let imageId: string | undefined;
    try {
      const result = await c.snapshot(source, { mode: 'direct' });
      imageId = result.imageId;
      expect(result.glance?.status).toBe('active');
      const create = rec.sent.find((s) => s.method === 'POST' && s.path === '/v2/images');
      const patch = rec.sent.find((s) => s.method === 'PATCH');
      // Renewed before use: Glance was not first asked with the expired token (a 401 would repeat the PATCH).
      expect(rec.sent.filter((s) => s.method === 'PATCH')).toHaveLength(1);
      expect(create?.token).toBeDefined();
      expect(patch?.token).toBeDefined();
      expect(patch?.token).not.toBe(create?.token);
      expect(await keystoneAccepts(create?.token ?? '')).toBe(false);
      expect(auth!.issuedCount).toBeGreaterThanOrEqual(2);
      expect((await glanceImage(ks(), result.imageId))?.owner).toBe(ks().env.demo_project_id);
    } finally {
      await c.close();
      if (imageId) await deleteGlanceImage(ks(), imageId);
      await client.close();
      await auth?.close();
      await rec.close();
    }
    // The run was seen (its id came from its result) and left nothing in the own pools.
    expect(imageId).toBeDefined();
    await pools.leftovers.expectUnchanged(before);
    expect(await diskSnapshots(cluster, pools.vms, name)).toEqual([]);
  }, 90_000);

  it('answers a 401 from Glance with one fresh token, and only one', async () => {
    const auth = OpenStackAuth.resolve({ auth: memberOptions(), env: {} })!;
    const rec = recordingDispatcher();
    const client = new GlanceClient({ endpoint: ks().glanceUrl, token: auth, dispatcher: rec.dispatcher });
    try {
      const first = await auth.token();
      const issued = auth.issuedCount;
      await revokeToken(ks(), first);
      await client.listAllImages({ pageSize: 1 });
      expect(rec.sent.map((s) => s.token)).toEqual([first, expect.any(String)]);
      expect(rec.sent[1]?.token).not.toBe(first);
      expect(auth.issuedCount).toBe(issued + 1);

      // A provider that keeps handing out a revoked token: asked again once, then the 401 is the answer.
      let invalidated = 0;
      const stuck = new GlanceClient({
        endpoint: ks().glanceUrl,
        token: { token: () => first, invalidate: () => void invalidated++ },
        dispatcher: rec.dispatcher,
      });
      rec.sent.length = 0;
      const err = await stuck.listAllImages({ pageSize: 1 }).catch((e: unknown) => e);
      await stuck.close();
      expect(err).toBeInstanceOf(GlanceUnauthorized);
      expect(String((err as Error).message)).not.toContain(first);
      expect(rec.sent).toHaveLength(2);
      expect(invalidated).toBe(1);
    } finally {
      await client.close();
      await auth.close();
      await rec.close();
    }
  });

  it('sends the service token with location calls only; Glance takes it from the service user and refuses one without the service role', async () => {
    const b = ks();
    // Tokens live 15 s here: each request gets fresh ones, and the test remembers which it handed out.
    const given = { member: [] as string[], nova: [] as string[] };
    const fresh = async (user: 'member' | 'nova') => {
      const t = await userToken(b, user);
      given[user].push(t);
      return t;
    };
    const rec = recordingDispatcher();
    const names = [uniqueName('ks-svc'), uniqueName('ks-nosvc')];
    const ids: string[] = [];
    const withService = (service: 'member' | 'nova') =>
      new GlanceClient({ endpoint: b.glanceUrl, token: { token: () => fresh('member'), serviceToken: () => fresh(service) }, dispatcher: rec.dispatcher });
    const good = withService('nova');
    const bad = withService('member');
    const before = await pools.leftovers.snapshot(glanceOf(b));
    try {
      const [goodUrl, badUrl] = await Promise.all(names.map((n) => makeRbdSnapshot(cluster, n, randomData(1 << 20), pools.images)));
      const image = await good.createImage({ name: names[0]!, diskFormat: 'raw', containerFormat: 'bare' });
      ids.push(image.id);
      const added = await good.addLocation(image.id, goodUrl!, { expectedFsid: cluster.fsid });
      expect(added.image.status).toBe('active');
      const create = rec.sent.find((s) => s.method === 'POST' && s.path === '/v2/images');
      const patch = rec.sent.find((s) => s.method === 'PATCH');
      expect(given.member).toContain(create?.token);
      expect(create?.serviceToken).toBeUndefined();
      expect(given.member).toContain(patch?.token);
      expect(given.nova).toContain(patch?.serviceToken);

      const other = await bad.createImage({ name: names[1]!, diskFormat: 'raw', containerFormat: 'bare' });
      ids.push(other.id);
      const err = await bad.addLocation(other.id, badUrl!, { expectedFsid: cluster.fsid }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GlanceUnauthorized);
      expect((await glanceImage(b, other.id))?.status).toBe('queued');
    } finally {
      for (const id of ids) await deleteGlanceImage(b, id);
      await Promise.all([good.close(), bad.close(), rec.close()]);
      for (const n of names) await removeRbdImage(cluster, `${pools.images}/${n}`);
    }
    await pools.leftovers.expectUnchanged(before);
  });
});
