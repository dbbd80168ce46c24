// The plain RADOS calls a journal needs, on a real cluster: compound write ops with omap compare-and-set,
// omap reads and paging, object removal, and the client calls (address, instance id, blocklist).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as rbd from 'ceph-rbd-napi';
import { testbed, uniqueName } from '../support/testbed.js';
import { connect } from './helpers.js';

const env = testbed();
const A = env.clusters.a;
const OID = uniqueName('napi-rados');

let cluster: rbd.Cluster;
let io: rbd.Ioctx;

beforeAll(async () => {
  cluster = await connect(A);
  io = await cluster.openIoctx('vms');
});

afterAll(async () => {
  await rbd.removeObject(io, OID).catch(() => {});
  // Nothing left: the object is gone.
  await expect(rbd.omapGet(io, OID, ['x'])).rejects.toBeInstanceOf(rbd.NotFoundError);
  await io?.close();
  await cluster?.close();
});

describe('omap write ops', () => {
  it('create exclusive, set, read back by keys and in pages, compare-and-set, remove keys, remove', async () => {
    await rbd.writeOp(io, OID, [{ op: 'create', exclusive: true }]);
    await expect(rbd.writeOp(io, OID, [{ op: 'create', exclusive: true }])).rejects.toBeInstanceOf(rbd.ExistsError);

    const entries: Record<string, string> = {};
    for (let i = 0; i < 25; i++) entries[`k${String(i).padStart(3, '0')}`] = `v${i}`;
    await rbd.writeOp(io, OID, [{ op: 'assertExists' }, { op: 'omapSet', entries }, { op: 'omapSet', entries: { bin: Buffer.from([0, 1, 255]) } }]);

    const got = await rbd.omapGet(io, OID, ['k003', 'missing', 'bin']);
    expect([...got.keys()].sort()).toEqual(['bin', 'k003']);
    expect(got.get('k003')?.toString()).toBe('v3');
    expect([...(got.get('bin') ?? [])]).toEqual([0, 1, 255]);

    const page = await rbd.omapList(io, OID, { prefix: 'k', max: 10 });
    expect([...page.entries.keys()]).toEqual(Object.keys(entries).slice(0, 10));
    expect(page.more).toBe(true);
    const next = await rbd.omapList(io, OID, { prefix: 'k', startAfter: 'k009', max: 10 });
    expect([...next.entries.keys()][0]).toBe('k010');
    const all = await rbd.omapListAll(io, OID, 'k');
    expect(all.size).toBe(25);

    // Compare-and-set: a stale expectation fails the whole op (nothing applied), a current one applies.
    const stale = rbd.writeOp(io, OID, [{ op: 'omapCmp', equals: { k001: 'old' } }, { op: 'omapSet', entries: { k001: 'new', other: 'x' } }]);
    const err = await stale.catch((e: unknown) => e);
    expect(rbd.isCompareFailed(err)).toBe(true);
    expect((await rbd.omapGet(io, OID, ['k001', 'other'])).size).toBe(1);
    await rbd.writeOp(io, OID, [{ op: 'omapCmp', equals: { k001: 'v1' } }, { op: 'omapSet', entries: { k001: 'new' } }]);
    expect((await rbd.omapGet(io, OID, ['k001'])).get('k001')?.toString()).toBe('new');

    // A missing key compares as empty: '' asserts absence (take a key only if nobody has it).
    await rbd.writeOp(io, OID, [{ op: 'omapCmp', equals: { fresh: '' } }, { op: 'omapSet', entries: { fresh: 'mine' } }]);
    expect(rbd.isCompareFailed(await rbd.writeOp(io, OID, [{ op: 'omapCmp', equals: { fresh: '' } }, { op: 'omapSet', entries: { fresh: 'theirs' } }]).catch((e: unknown) => e))).toBe(true);
    expect((await rbd.omapGet(io, OID, ['fresh'])).get('fresh')?.toString()).toBe('mine');

    await rbd.writeOp(io, OID, [{ op: 'omapRm', keys: ['k000', 'nope'] }]);
    expect((await rbd.omapGet(io, OID, ['k000'])).size).toBe(0);

    await rbd.removeObject(io, OID);
    await expect(rbd.removeObject(io, OID)).rejects.toBeInstanceOf(rbd.NotFoundError);
    await expect(rbd.writeOp(io, OID, [{ op: 'assertExists' }, { op: 'omapSet', entries: { a: 'b' } }])).rejects.toBeInstanceOf(rbd.NotFoundError);
  });

  it('refuses names with NUL, which C would truncate to another name, and creates nothing', async () => {
    const base = uniqueName('napi-nul');
    await expect(io.createImage(`${base}\0tail`, 4 * 1024 * 1024)).rejects.toBeInstanceOf(rbd.InvalidArgumentError);
    await expect(io.openImage(`${base}\0`)).rejects.toBeInstanceOf(rbd.InvalidArgumentError);
    await expect(rbd.writeOp(io, `${OID}\0x`, [{ op: 'create', exclusive: false }])).rejects.toBeInstanceOf(rbd.InvalidArgumentError);
    await expect(rbd.writeOp(io, OID, [{ op: 'omapSet', entries: { 'k\0': 'v' } }])).rejects.toBeInstanceOf(rbd.InvalidArgumentError);
    expect((await io.listImages()).filter((n) => n.startsWith(base))).toEqual([]);
  });

  it('checks arguments in JS before reaching C', async () => {
    await expect(rbd.writeOp(io, OID, [])).rejects.toBeInstanceOf(rbd.InvalidArgumentError);
    await expect(rbd.writeOp(io, '', [{ op: 'remove' }])).rejects.toBeInstanceOf(rbd.InvalidArgumentError);
    await expect(rbd.writeOp(io, OID, [{ op: 'omapSet', entries: { '': 'x' } }])).rejects.toBeInstanceOf(rbd.InvalidArgumentError);
  });
});

describe('client calls', () => {
  it('this client: its address and instance id; a blocklisted client can no longer write', async () => {
    const victim = await connect(A);
    const vio = await victim.openIoctx('vms');
    try {
      const addr = await rbd.clientAddress(victim);
      expect(addr).toMatch(/\d+\.\d+\.\d+\.\d+:\d+\/\d+/);
      expect(rbd.instanceId(victim)).toBeGreaterThan(0n);
      expect(rbd.instanceId(victim)).not.toBe(rbd.instanceId(cluster));
      await rbd.writeOp(vio, OID, [{ op: 'create', exclusive: false }, { op: 'omapSet', entries: { victim: 'alive' } }]);

      await rbd.blocklistAdd(cluster, addr, 60);
      const err = await rbd.writeOp(vio, OID, [{ op: 'omapSet', entries: { victim: 'after' } }]).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(rbd.RbdError);
      expect((await rbd.omapGet(io, OID, ['victim'])).get('victim')?.toString()).toBe('alive');
    } finally {
      await vio.close();
      await victim.close();
    }
  });

  it('the connect timeout bounds connecting only; RADOS ops get their own, generous, configurable bound', async () => {
    const byDefault = await rbd.Cluster.connect({ confPath: A.conf, timeoutMs: 5000 });
    const configured = await rbd.Cluster.connect({ confPath: A.conf, timeoutMs: 5000, opTimeoutMs: 42_000 });
    try {
      expect(Number.parseFloat(byDefault.confGet('client_mount_timeout'))).toBe(5);
      // Longer than an OSD failover (osd_heartbeat_grace 20 s + detection): librados resends meanwhile.
      expect(Number.parseFloat(byDefault.confGet('rados_osd_op_timeout'))).toBe(300);
      expect(Number.parseFloat(byDefault.confGet('rados_mon_op_timeout'))).toBe(300);
      expect(Number.parseFloat(configured.confGet('rados_osd_op_timeout'))).toBe(42);
      expect(Number.parseFloat(configured.confGet('rados_mon_op_timeout'))).toBe(42);
    } finally {
      await byDefault.close();
      await configured.close();
    }
  });

  it('calls on a closed cluster reject with ClosedError', async () => {
    const c = await connect(A);
    await c.close();
    await expect(rbd.clientAddress(c)).rejects.toBeInstanceOf(rbd.ClosedError);
    expect(() => rbd.instanceId(c)).toThrow(rbd.ClosedError);
  });
});
