// Issue 21 in the library: the operator's commonest Ceph mistakes, tried against the test bed's real cluster,
// come out of CephCluster.connect, RbdStore (the target side) and SnapshotCoordinator (the source side) as
// typed errors with catalog codes, naming the user and the files, never the key.
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { CephAuthError, CephCluster, CephConfigError, CephUnreachable, isWellFormedKey } from '../../src/ceph/index.js';
import { SnapshotCoordinator } from '../../src/coordinator/index.js';
import { RbdStore } from '../../src/drivers/rbd/index.js';
import { exitCodeFor, hasCode } from '../../src/errors.js';
import { expectNoSecret, makeMistakes, newKey } from '../support/ceph-mistakes.js';
import type { Snapshot } from '../support/leftovers.js';
import { ownPools } from '../support/own-pools.js';
import { testbed, uniqueName } from '../support/testbed.js';

const a = testbed().clusters.a;
// The store and the coordinator write to pools of this file's own on cluster a; the leftovers probe lists
// them whole before each case and after it.
const pools = ownPools('mistakes', { clusters: () => [a] });
let before: Snapshot;
beforeEach(async () => {
  before = await pools.leftovers.snapshot();
});
const { dir, mistakes, secrets, global, conf } = await makeMistakes(a);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const TIMEOUT_MS = 2000;

function expectExplained(err: unknown, m: (typeof mistakes)[number]): void {
  expect(err).toBeInstanceOf(m.code === 'CEPH_AUTH' ? CephAuthError : CephUnreachable);
  expect(err).toMatchObject({ code: m.code });
  expect(exitCodeFor(err)).toBe(m.exit);
  const e = err as CephAuthError;
  expect(e.message).toContain(`client.${m.user}`);
  expect(e.message).toContain(m.keyring ?? m.confPath);
  expect(e.fix.length).toBeGreaterThan(0);
  expect(e.context.fix).toBe(e.fix);
  expectNoSecret(`${e.message}\n${JSON.stringify(e)}\n${e.stack ?? ''}\n${String((e.cause as Error | undefined)?.message)}`, secrets);
}

describe('cephx keys', () => {
  it('tells a key as `ceph auth get` prints it from a mangled one', () => {
    const key = newKey();
    expect(isWellFormedKey(key)).toBe(true);
    expect(isWellFormedKey(key.slice(0, 36))).toBe(false);
    expect(isWellFormedKey(key.slice(1))).toBe(false);
    expect(isWellFormedKey(`${key.slice(0, 10)}*${key.slice(11)}`)).toBe(false);
    // The right length, but the length field says 17 bytes of secret where 16 follow.
    const b = Buffer.from(key, 'base64');
    b.writeUInt16LE(17, 10);
    expect(isWellFormedKey(b.toString('base64'))).toBe(false);
  });
});

describe.each(mistakes)('$what', (m) => {
  it('CephCluster.connect throws the typed error', async () => {
    const err = await CephCluster.connect({ confPath: m.confPath, user: m.user, timeoutMs: TIMEOUT_MS }).catch((e: unknown) => e);
    expectExplained(err, m);
    if (m.code === 'CEPH_UNREACHABLE') expect((err as Error).message).toMatch(/mon host v2:127\.0\.0\.1:\d+/);
    if (m.what === 'a wrong key') expect((err as Error).message).toContain(`ceph -c ${m.confPath} auth get client.nova`);
  });

  it('the target side: RbdStore add/get/getSize/delete keep the code, and nothing is created', async () => {
    const id = uniqueName('mistake-target');
    const store = new RbdStore({ confPath: m.confPath, user: m.user, pool: pools.images, connectTimeoutMs: TIMEOUT_MS });
    try {
      const location = `rbd://${a.fsid}/${pools.images}/${id}/snap`;
      for (const call of [
        () => store.add(id, [Buffer.alloc(4096, 1)], 4096),
        () => store.get(location),
        () => store.getSize(location),
        () => store.delete(location),
      ]) {
        expectExplained(await call().catch((e: unknown) => e), m);
      }
    } finally {
      await store.close();
    }
    await pools.leftovers.expectUnchanged(before);
  });

  it('the source side: the coordinator keeps the code for snapshot, and check lists it as a finding', async () => {
    const id = uniqueName('mistake-source');
    const coordinator = new SnapshotCoordinator({
      source: { confPath: m.confPath, user: m.user, pool: pools.vms, connectTimeoutMs: TIMEOUT_MS },
      target: { kind: 'rbd', confPath: a.conf, ...pools.glance(a), pool: pools.images, chunkSizeMiB: 8, thinProvisioning: true, connectTimeoutMs: 10_000 },
    });
    try {
      const err = await coordinator.snapshot(`${pools.vms}/${id}`, { imageId: id }).catch((e: unknown) => e);
      expect(hasCode(err, m.code)).toBe(true);
      expectExplained(err, m);
      const plan = await coordinator.check(`${pools.vms}/${id}`);
      const finding = plan.reasons.find((r) => r.code === m.code);
      expect(finding).toMatchObject({ ok: false, message: expect.stringContaining(`client.${m.user}`) });
      expect(finding?.message).toMatch(/^the source cluster/);
      expect(finding?.fix).toBeTruthy();
      // The target connection works, and check says so in the same run.
      expect(plan.reasons).toContainEqual(expect.objectContaining({ code: 'CEPH_CONNECTED', ok: true }));
      expectNoSecret(JSON.stringify(plan), secrets);
    } finally {
      await coordinator.close();
    }
    await pools.leftovers.expectUnchanged(before);
  });
});

describe('ceph.conf mistakes librados reports with the same errnos', () => {
  const novaKeyring = join(a.dir, 'nova.keyring');
  const connect = (confPath: string) => CephCluster.connect({ confPath, user: 'nova', timeoutMs: TIMEOUT_MS }).catch((e: unknown) => e);

  it('no mon host (ENOENT at rados_connect, like a missing keyring) is CEPH_CONFIG naming the option', async () => {
    const confPath = conf('nomon', `[client.nova]\nkeyring = ${novaKeyring}`, global.replace(/^mon host = .*\n/m, ''));
    const err = await connect(confPath);
    expect(err).toBeInstanceOf(CephConfigError);
    expect(err).toMatchObject({ code: 'CEPH_CONFIG', message: expect.stringContaining(`${confPath} names no monitors for client.nova`) });
    expect(exitCodeFor(err)).toBe(2);
  });

  it('a mon host that does not resolve (EINVAL at rados_connect, like a bad key) is CEPH_CONFIG, the key being well-formed', async () => {
    const confPath = conf('badmon', `[client.nova]\nkeyring = ${novaKeyring}`, global.replace(/^mon host = .*$/m, 'mon host = nosuchhost.invalid:6789'));
    const err = await connect(confPath);
    expect(err).toMatchObject({ code: 'CEPH_CONFIG', message: expect.stringContaining('nosuchhost.invalid:6789') });
    expect((err as CephConfigError).fix).toContain(confPath);
  });

  it('a keyring librados cannot parse (EIO at rados_connect) is CEPH_AUTH naming it', async () => {
    // Its entry and key look right to snapstore's check; librados' parser stops at the broken section header.
    const keyring = join(dir, 'broken.keyring');
    writeFileSync(keyring, `[client.nova]\n\tkey = ${newKey()}\n[broken\n`);
    const err = await connect(conf('binkeyring', `[client.nova]\nkeyring = ${keyring}`));
    expect(err).toBeInstanceOf(CephAuthError);
    expect(err).toMatchObject({ code: 'CEPH_AUTH', message: expect.stringContaining(`cannot parse the keyring ${keyring}`) });
  });

  it('a keyring entry whose key is mangled is CEPH_AUTH before librados sees it', async () => {
    const keyring = join(dir, 'mangled.keyring');
    writeFileSync(keyring, `[client.nova]\n\tkey = ${secrets[0]!.slice(0, 20)}${secrets[0]!.slice(21)}\n`);
    const err = await connect(conf('mangled', `[client.nova]\nkeyring = ${keyring}`));
    expect(err).toMatchObject({ code: 'CEPH_AUTH', message: expect.stringContaining(`the keyring ${keyring}`) });
    expect((err as Error).message).toContain('is malformed');
    expectNoSecret(JSON.stringify(err) + (err as Error).message, secrets);
  });
});
