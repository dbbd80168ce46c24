// The Ceph connection layer on real clusters: identity, shared pool handles, and the mistakes operators
// make in ceph.conf reported by name (missing keyring, unreadable conf, wrong key, unreachable monitor).
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { CEPH_DEFAULTS, CephAuthError, CephCluster, findKeyring, readCephConf } from '../../src/ceph/index.js';
import { RbdStore } from '../../src/drivers/rbd/index.js';
import type { Snapshot } from '../support/leftovers.js';
import { ownPools } from '../support/own-pools.js';
import { testbed, uniqueName } from '../support/testbed.js';

const env = testbed();
const { a, b } = env.clusters;
// The stores that write (or fail to) use a pool of this file's own on cluster a, which the leftovers probe
// lists whole before each case and after the cases that add.
const pools = ownPools('drv-ceph', { clusters: () => [a] });
let before: Snapshot;
beforeEach(async () => {
  before = await pools.leftovers.snapshot();
});
const scratch = mkdtempSync(join(tmpdir(), 'snapstore-ceph-'));
afterAll(() => rm(scratch, { recursive: true, force: true }));

/** A copy of cluster a's ceph.conf with `edit` applied. */
function confVariant(name: string, edit: (text: string) => string): string {
  const path = join(scratch, `${name}.conf`);
  writeFileSync(path, edit(readFileSync(a.conf, 'utf8')));
  return path;
}

describe('CephCluster', () => {
  it('connects as a cephx user and reports the cluster fsid', async () => {
    for (const [cluster, user] of [[a, 'glance'], [b, 'nova-ro']] as const) {
      const conn = await CephCluster.connect({ confPath: cluster.conf, user });
      try {
        expect(conn.fsid).toBe(cluster.fsid);
        expect(conn.user).toBe(user);
      } finally {
        await conn.close();
      }
    }
  });

  it("keeps Ceph's own defaults (no lowered rbd_concurrent_management_ops) unless ceph.conf sets them for the user; a bad option fails by name", async () => {
    expect(CEPH_DEFAULTS).toEqual({});
    const plain = await CephCluster.connect({ confPath: a.conf, user: 'nova' });
    try {
      expect(plain.confGet('rbd_concurrent_management_ops')).toBe('10');
    } finally {
      await plain.close();
    }
    // The operator's value wins, from [client.<user>], [client] or [global], spelled with spaces or underscores.
    for (const [section, value] of [['client.nova', '7'], ['client', '9'], ['global', '12']] as const) {
      const conf = confVariant(`ops-${section}`, (t) => `${t}\n[${section}]\nrbd concurrent management ops = ${value}\n`);
      const conn = await CephCluster.connect({ confPath: conf, user: 'nova' });
      try {
        expect(conn.confGet('rbd_concurrent_management_ops')).toBe(value);
      } finally {
        await conn.close();
      }
    }
    // No defaults: librbd's own.
    const stock = await CephCluster.connect({ confPath: a.conf, user: 'nova', defaults: {} });
    try {
      expect(stock.confGet('rbd_concurrent_management_ops')).toBe('10');
      expect(() => stock.confGet('no_such_option')).toThrow(expect.objectContaining({ code: 'NOT_FOUND' }));
    } finally {
      await stock.close();
    }
    await expect(CephCluster.connect({ confPath: a.conf, user: 'nova', defaults: { no_such_option: 1 } })).rejects.toThrow(/no_such_option/);
  });

  it('shares one handle per pool, and close() is safe twice and refuses work afterwards', async () => {
    const conn = await CephCluster.connect({ confPath: a.conf, user: 'glance' });
    const [p1, p2] = await Promise.all([conn.pool('images'), conn.pool('images')]);
    expect(p1).toBe(p2);
    expect(p1.pool).toBe('images');
    await conn.close();
    await conn.close();
    expect(conn.closed).toBe(true);
    await expect(conn.pool('images')).rejects.toMatchObject({ code: 'CLOSED' });
  });

  it('does not cache a pool that failed to open', async () => {
    const conn = await CephCluster.connect({ confPath: a.conf });
    try {
      const missing = uniqueName('nopool');
      await expect(conn.pool(missing)).rejects.toMatchObject({ code: 'NOT_FOUND' });
      await expect(conn.pool(missing)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    } finally {
      await conn.close();
    }
  });

  it('lets several stores share one connection without closing it', async () => {
    const conn = await CephCluster.connect({ confPath: a.conf, ...pools.glance(a) });
    const one = new RbdStore({ confPath: a.conf, ...pools.glance(a), pool: pools.images, cluster: conn });
    const two = new RbdStore({ confPath: a.conf, ...pools.glance(a), pool: pools.images, cluster: conn });
    try {
      const { location } = await one.add(uniqueName('shared'), [Buffer.alloc(4096, 1)]);
      await one.close();
      expect(conn.closed).toBe(false);
      expect(await two.getSize(location)).toBe(4096);
      await expect(one.getSize(location)).rejects.toMatchObject({ code: 'CLOSED' });
      await two.delete(location);
    } finally {
      await two.close();
      await conn.close();
    }
    await pools.leftovers.expectUnchanged(before);
  });

  it('names a keyring that holds no key for the user instead of failing inside librados', async () => {
    const adminOnly = join(scratch, 'admin-only.keyring');
    writeFileSync(adminOnly, '[client.admin]\n\tkey = AQBx5FNhAAAAABAAtAn1Swme3Q1vC1KZ2fNtwQ==\n');
    const conf = confVariant('no-glance-keyring', (t) =>
      t.replace(/\[client\.glance\]\nkeyring = .*\n/, '').replace(/^keyring = .*$/m, `keyring = ${adminOnly}`),
    );
    const err = (await CephCluster.connect({ confPath: conf, user: 'glance' }).catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(CephAuthError);
    expect(err).toMatchObject({ code: 'CEPH_AUTH' });
    expect(err.message).toContain(`the keyring ${adminOnly} (from [global] keyring in ${conf}) holds no key for client.glance`);
    expect(err.message).toContain('[client.glance] keyring =');
    expect(JSON.stringify(err) + err.message).not.toContain('AQBx5FNh');
    expect(findKeyring(readCephConf(a.conf), a.conf, 'glance')).toBe(join(a.dir, 'glance.keyring'));
    expect(findKeyring(readCephConf(a.conf), a.conf, 'admin')).toBe(join(a.dir, 'keyring'));
  });

  it('names the keyring search when ceph.conf names none and no default exists', async () => {
    const conf = confVariant('no-keyring-at-all', (t) => t.replace(/\[client\.glance\]\nkeyring = .*\n/, '').replace(/^keyring = .*\n/m, ''));
    await expect(CephCluster.connect({ confPath: conf, user: 'glance' })).rejects.toMatchObject({
      code: 'CEPH_AUTH',
      message: expect.stringContaining('names no keyring for client.glance'),
    });
  });

  it('reports a keyring named in ceph.conf that does not exist', async () => {
    const conf = confVariant('gone-keyring', (t) =>
      t.replace(/\[client\.glance\]\nkeyring = .*\n/, `[client.glance]\nkeyring = ${scratch}/nowhere.keyring\n`),
    );
    const err = (await CephCluster.connect({ confPath: conf, user: 'glance' }).catch((e: unknown) => e)) as Error;
    expect(err).toMatchObject({ code: 'CEPH_AUTH' });
    expect(err.message).toContain(`${scratch}/nowhere.keyring`);
    expect(err.message).toContain('[client.glance] keyring');
    const store = new RbdStore({ confPath: conf, user: 'glance', pool: pools.images });
    await expect(store.add(uniqueName('nokeyring'), [Buffer.alloc(1)])).rejects.toMatchObject({
      code: 'CEPH_AUTH',
      message: expect.stringContaining('nowhere.keyring'),
    });
    await store.close();
    await pools.leftovers.expectUnchanged(before);
  });

  it('reports an explicit keyring path that does not exist, and a missing ceph.conf', async () => {
    await expect(
      CephCluster.connect({ confPath: a.conf, user: 'glance', keyring: `${scratch}/missing.keyring` }),
    ).rejects.toMatchObject({ code: 'CEPH_AUTH' });
    await expect(CephCluster.connect({ confPath: `${scratch}/missing.conf`, user: 'glance' })).rejects.toMatchObject({
      code: 'CEPH_CONFIG',
      message: expect.stringContaining('does not exist'),
    });
  });

  it('surfaces a key cephx rejects as CEPH_AUTH, without echoing the key', async () => {
    const key = 'AQBx5FNhAAAAABAAtAn1Swme3Q1vC1KZ2fNtwQ==';
    const keyring = join(scratch, 'wrong.keyring');
    writeFileSync(keyring, `[client.glance]\n\tkey = ${key}\n`);
    const store = new RbdStore({ confPath: a.conf, user: 'glance', pool: pools.images, keyring, connectTimeoutMs: 5000 });
    const err = (await store.add(uniqueName('wrongkey'), [Buffer.alloc(1)]).catch((e: unknown) => e)) as Error;
    expect(err).toMatchObject({ code: 'CEPH_AUTH' });
    expect(JSON.stringify(err) + err.message).not.toContain(key);
    await store.close();
    await pools.leftovers.expectUnchanged(before);
  });

  it('times out on a monitor that does not answer', async () => {
    const conf = confVariant('dead-mon', (t) => t.replace(/mon host = .*/, 'mon host = v2:127.0.0.1:47299'));
    const started = Date.now();
    const store = new RbdStore({ confPath: conf, user: 'glance', pool: 'images', connectTimeoutMs: 2000 });
    await expect(store.getSize(`rbd://${a.fsid}/images/x/snap`)).rejects.toMatchObject({ code: 'CEPH_UNREACHABLE' });
    expect(Date.now() - started).toBeLessThan(15_000);
  });
});
