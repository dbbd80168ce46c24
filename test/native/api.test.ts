// ceph-rbd-napi against real Ceph: every call of the API, its error classes, and cleanup. The
// results are checked with the `rbd` CLI where our own code could agree with itself by mistake.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import * as rbd from 'ceph-rbd-napi';
import type { Snapshot } from '../support/leftovers.js';
import { ownPools } from '../support/own-pools.js';
import { rbd as rbdCli, rbdJson, testbed, uniqueName } from '../support/testbed.js';
import { connect, destroyImage, MiB, within } from './helpers.js';

const env = testbed();
const A = env.clusters.a; // clone v2 capable
const B = env.clusters.b; // clone v1 only
// Names say which file made an image; what is left behind is found by the probe, not by names.
const MARK = uniqueName('napi');
// Pools `images`/`vms` of this file's own on both clusters (users like nova-ro and glance on them): the
// leftovers probe lists them whole, at the start, before each case and where a case checks.
const pools = ownPools('napi');
const VMS = () => pools.vms;
const IMAGES = () => pools.images;
let initial: Snapshot;
let before: Snapshot;
beforeEach(async () => {
  before = await pools.leftovers.snapshot();
});
const nothingLeft = (since: Snapshot = before) => pools.leftovers.expectUnchanged(since);

let cluster: rbd.Cluster;
let vms: rbd.Ioctx;
let images: rbd.Ioctx;

beforeAll(async () => {
  initial = await pools.leftovers.snapshot();
  cluster = await connect(A);
  vms = await cluster.openIoctx(VMS());
  images = await cluster.openIoctx(IMAGES());
});

afterAll(async () => {
  await vms?.close();
  await images?.close();
  await cluster?.close();
  await nothingLeft(initial);
});

function name(what: string): string {
  return `${MARK}-${what}-${uniqueName('x').slice(2)}`;
}

async function expectError<T extends rbd.RbdError>(
  promise: Promise<unknown>,
  cls: new (...args: never[]) => T,
  fields: Partial<Pick<rbd.RbdError, 'code' | 'errno' | 'call' | 'object'>> = {},
): Promise<T> {
  const err = await promise.then(
    () => {
      throw new Error(`expected ${cls.name}, but the call succeeded`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(cls);
  expect(err).toBeInstanceOf(rbd.RbdError);
  expect(err).toMatchObject(fields);
  return err as T;
}

describe('errors', () => {
  it('maps every errno of the table to its class and code, carrying errno, call and object', () => {
    const cases: Array<[number, new (...a: never[]) => rbd.RbdError, string]> = [
      [2, rbd.NotFoundError, 'NOT_FOUND'],
      [17, rbd.ExistsError, 'EXISTS'],
      [16, rbd.BusyError, 'BUSY'],
      [39, rbd.HasSnapshotsError, 'HAS_SNAPSHOTS'],
      [1, rbd.PermissionError, 'PERMISSION'],
      [13, rbd.PermissionError, 'PERMISSION'],
      [30, rbd.ReadOnlyError, 'READ_ONLY'],
      [28, rbd.NoSpaceError, 'NO_SPACE'],
      [122, rbd.NoSpaceError, 'NO_SPACE'],
      [110, rbd.TimeoutError, 'TIMEOUT'],
      [125, rbd.CanceledError, 'CANCELED'],
      [22, rbd.InvalidArgumentError, 'INVALID_ARGUMENT'],
      [95, rbd.NotSupportedError, 'NOT_SUPPORTED'],
      [38, rbd.NotSupportedError, 'NOT_SUPPORTED'],
      [107, rbd.ConnectionError, 'CONNECTION'],
      [108, rbd.ConnectionError, 'CONNECTION'],
      [9, rbd.ClosedError, 'CLOSED'],
      [34, rbd.RbdError, 'RBD_ERROR'],
    ];
    for (const [errno, cls, code] of cases) {
      const err = rbd.errorFromErrno(errno, 'rbd_open', 'images/x@s');
      expect(err).toBeInstanceOf(cls);
      expect(err).toMatchObject({ code, errno, call: 'rbd_open', object: 'images/x@s', name: cls.name });
      expect(err.message).toContain('rbd_open');
      expect(err.message).toContain('images/x@s');
    }
    expect(rbd.errorFromErrno(5, 'rados_connect', 'client.admin')).toBeInstanceOf(rbd.ConnectionError);
    expect(rbd.errorFromErrno(5, 'rbd_aio_read', 'vms/x').constructor).toBe(rbd.RbdError);
    expect(rbd.errorFromErrno(-2, 'rbd_open')).toMatchObject({ errno: 2, code: 'NOT_FOUND' });
    expect(rbd.ImageNotFoundError).toBe(rbd.NotFoundError);
    expect(rbd.ImageBusyError).toBe(rbd.BusyError);
  });

  it('converts feature names and bits both ways and rejects unknown names', () => {
    expect(rbd.featureBits(['layering', 'deep-flatten'], 'rbd_create4')).toBe(33n);
    expect(rbd.featureNames(61n)).toEqual(['layering', 'exclusive-lock', 'object-map', 'fast-diff', 'deep-flatten']);
    expect(() => rbd.featureBits(['layring'], 'rbd_create4', 'vms/x')).toThrow(rbd.InvalidArgumentError);
  });

  it('handles come only from connect/openIoctx/openImage, and expose no internals', () => {
    // The constructors are private in the types; plain JS gets a TypeError naming the factory.
    const construct = (cls: unknown) => () => new (cls as new () => unknown)();
    expect(construct(rbd.Cluster)).toThrow(/use Cluster\.connect\(\)/);
    expect(construct(rbd.Ioctx)).toThrow(/use Cluster\.openIoctx\(\)/);
    expect(construct(rbd.Image)).toThrow(/use Ioctx\.openImage\(\)/);
    for (const cls of [rbd.Cluster, rbd.Ioctx, rbd.Image]) {
      const statics = Object.getOwnPropertyNames(cls).filter((n) => !['length', 'name', 'prototype'].includes(n));
      expect(statics).toEqual(cls === rbd.Cluster ? ['connect'] : []);
    }
  });
});

describe('Cluster', () => {
  it('connects, reports the fsid and user, lists pools', async () => {
    expect(rbd.isAvailable()).toBe(true);
    expect(cluster.fsid).toBe(A.fsid);
    expect(cluster.user).toBe('admin');
    expect(cluster.closed).toBe(false);
    expect((await cluster.listPools()).sort()).toEqual(expect.arrayContaining(['images', 'vms', IMAGES(), VMS()]));
  });

  it('connects as a least-privilege user with an explicit keyring', async () => {
    const glance = await rbd.Cluster.connect({ confPath: A.conf, ...pools.glance(A) });
    try {
      expect(glance.user).toBe(pools.glance(A).user);
      expect(glance.fsid).toBe(A.fsid);
      const io = await glance.openIoctx(IMAGES());
      expect(Array.isArray(await io.listImages())).toBe(true);
      await io.close();
    } finally {
      await glance.close();
    }
  });

  it('rejects a missing ceph.conf with NotFoundError and a wrong key with PermissionError', async () => {
    await expectError(rbd.Cluster.connect({ confPath: `${A.dir}/missing.conf` }), rbd.NotFoundError, {
      call: 'rados_conf_read_file',
    });
    // glance's key presented as client.nova: cephx refuses it.
    const err = await expectError(
      rbd.Cluster.connect({ confPath: A.conf, user: 'nova', keyring: `${A.dir}/glance.keyring`, timeoutMs: 5000 }),
      rbd.RbdError,
      { call: 'rados_connect' },
    );
    expect(['PERMISSION', 'NOT_FOUND']).toContain(err.code);
    expect(err.message).not.toMatch(/AQ[A-Za-z0-9+/]{20,}/); // no key material
  });

  it('openIoctx on a missing pool is NotFoundError naming the pool', async () => {
    await expectError(cluster.openIoctx('no-such-pool'), rbd.NotFoundError, {
      call: 'rados_ioctx_create',
      object: 'no-such-pool',
    });
  });

  it('close is idempotent and any later call rejects with ClosedError without reaching C', async () => {
    const c = await connect(A);
    const first = c.close();
    expect(c.close()).toBe(first);
    await first;
    expect(c.closed).toBe(true);
    await expectError(c.listPools(), rbd.ClosedError, { errno: 9, call: 'rados_pool_list', code: 'CLOSED' });
    await expectError(c.openIoctx(VMS()), rbd.ClosedError, { call: 'rados_ioctx_create' });
  });

  it('keeps the connection alive for an image opened from it after Cluster and Ioctx are closed', async () => {
    const c = await connect(A);
    const io = await c.openIoctx(VMS());
    const img = name('keepalive');
    await io.createImage(img, 4 * MiB);
    const image = await io.openImage(img);
    await io.close();
    await c.close();
    await expectError(io.listImages(), rbd.ClosedError);
    await image.write(0, Buffer.from('still connected'));
    expect((await image.read(0, 15)).toString()).toBe('still connected');
    await image.close();
    await destroyImage(vms, img);
  });
});

describe('Ioctx', () => {
  it('creates images with features, order and striping; lists, stats and removes them', async () => {
    const img = name('create');
    await vms.createImage(img, 64 * MiB, { features: ['layering', 'exclusive-lock'], order: 20 });
    try {
      expect(await vms.listImages()).toContain(img);
      const stat = await vms.statImage(img);
      expect(stat).toMatchObject({ size: 64 * MiB, objectSize: MiB, numObjects: 64, order: 20, parent: null });
      expect(stat.features).toBe(rbd.FEATURES.layering! | rbd.FEATURES['exclusive-lock']!);
      expect(stat.featureNames).toEqual(['layering', 'exclusive-lock']);
      const info = await rbdJson<{ size: number; order: number; features: string[] }>(A, ['info', `${VMS()}/${img}`]);
      expect(info).toMatchObject({ size: 64 * MiB, order: 20, features: ['layering', 'exclusive-lock'] });
    } finally {
      await vms.removeImage(img);
    }
    expect(await vms.listImages()).not.toContain(img);

    const striped = name('striped');
    await vms.createImage(striped, 8n * BigInt(MiB), {
      features: rbd.FEATURES.layering! | rbd.FEATURES.striping!,
      stripeUnit: 65536n,
      stripeCount: 4n,
    });
    const info = await rbdJson<{ stripe_unit: number; stripe_count: number }>(A, ['info', `${VMS()}/${striped}`]);
    expect(info).toMatchObject({ stripe_unit: 65536, stripe_count: 4 });
    await vms.removeImage(striped);
  });

  it('rejects a duplicate name with ExistsError, a missing image with NotFoundError, bad input with InvalidArgumentError', async () => {
    const img = name('dup');
    await vms.createImage(img, MiB);
    try {
      await expectError(vms.createImage(img, MiB), rbd.ExistsError, { errno: 17, call: 'rbd_create4', object: `${VMS()}/${img}` });
    } finally {
      await vms.removeImage(img);
    }
    const missing = name('missing');
    await expectError(vms.removeImage(missing), rbd.NotFoundError, { call: 'rbd_remove_with_progress', object: `${VMS()}/${missing}` });
    await expectError(vms.statImage(missing), rbd.NotFoundError, { call: 'rbd_open_read_only' });
    await expectError(vms.openImage(missing), rbd.NotFoundError, { call: 'rbd_aio_open' });
    await expectError(vms.openImage(missing, { readOnly: true }), rbd.NotFoundError, { call: 'rbd_aio_open_read_only' });
    await expectError(vms.renameImage(missing, name('to')), rbd.NotFoundError, { call: 'rbd_rename' });
    await expectError(vms.createImage('', MiB), rbd.InvalidArgumentError);
    await expectError(vms.createImage(name('neg'), -1), rbd.InvalidArgumentError);
    await expectError(vms.createImage(name('feat'), MiB, { features: ['bogus'] }), rbd.InvalidArgumentError);
    await nothingLeft();
  });

  it('renames an image', async () => {
    const src = name('ren-src');
    const dst = name('ren-dst');
    await vms.createImage(src, MiB);
    await vms.renameImage(src, dst);
    const list = await vms.listImages();
    expect(list).toContain(dst);
    expect(list).not.toContain(src);
    await vms.removeImage(dst);
  });

  it('removeImage reports progress and refuses an image that is open (BusyError) or has snapshots (HasSnapshotsError)', async () => {
    const img = name('rm');
    await vms.createImage(img, 16 * MiB);
    const image = await vms.openImage(img);
    await expectError(vms.removeImage(img), rbd.BusyError, { errno: 16, call: 'rbd_remove_with_progress' });
    await image.snapCreate('s1');
    await image.close();
    await expectError(vms.removeImage(img), rbd.HasSnapshotsError, { errno: 39 });
    const again = await vms.openImage(img);
    await again.snapRemove('s1');
    await again.close();
    const seen: Array<[number, number]> = [];
    await vms.removeImage(img, { onProgress: (d, t) => seen.push([d, t]) });
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.at(-1)![0]).toBe(seen.at(-1)![1]);
    await nothingLeft();
  });

  it('moves to trash, lists, restores, and removes from trash', async () => {
    const img = name('trash');
    await vms.createImage(img, 4 * MiB);
    await vms.trashMove(img, 3600);
    expect(await vms.listImages()).not.toContain(img);
    let entry = (await vms.trashList()).find((e) => e.name === img);
    expect(entry).toBeDefined();
    expect(entry!.source).toBe('user');
    expect(entry!.deletionTime).toBeInstanceOf(Date);
    expect(entry!.defermentEndTime.getTime() - entry!.deletionTime.getTime()).toBe(3600_000);
    // Still deferred: removing without force is refused.
    await expectError(vms.trashRemove(entry!.id), rbd.RbdError, { call: 'rbd_trash_remove_with_progress' });
    const restored = name('trash-restored');
    await vms.trashRestore(entry!.id, restored);
    expect(await vms.listImages()).toContain(restored);
    await vms.trashMove(restored, 3600);
    entry = (await vms.trashList()).find((e) => e.name === restored);
    await vms.trashRemove(entry!.id, { force: true, onProgress: () => {} });
    expect((await vms.trashList()).find((e) => e.id === entry!.id)).toBeUndefined();
    await expectError(vms.trashRemove(entry!.id, { force: true }), rbd.NotFoundError);
    await nothingLeft();
  });

  it('opens an image by id (what a parent names), also one in the trash, which no name opens', async () => {
    const img = name('by-id');
    await vms.createImage(img, 4 * MiB);
    const byName = await vms.openImage(img);
    await byName.write(0, Buffer.from('by id'));
    await byName.close();
    await vms.trashMove(img, 3600);
    const entry = (await vms.trashList()).find((e) => e.name === img)!;
    await expectError(vms.openImage(img), rbd.NotFoundError, { call: 'rbd_aio_open' });
    const trashed = await vms.openImageById(entry.id, { readOnly: true });
    expect((await trashed.read(0, 5)).toString()).toBe('by id');
    await expectError(trashed.write(0, Buffer.from('x')), rbd.ReadOnlyError);
    await trashed.close();
    const writable = await vms.openImageById(entry.id);
    expect(await writable.size()).toBe(4 * MiB);
    await writable.close();
    await expectError(vms.openImageById(`${entry.id}ff`), rbd.NotFoundError, { call: 'rbd_aio_open_by_id' });
    await expectError(vms.openImageById(`${entry.id}ff`, { readOnly: true }), rbd.NotFoundError, { call: 'rbd_aio_open_by_id_read_only' });
    await vms.trashRemove(entry.id, { force: true });
    await nothingLeft();
  });

  it('rejects calls after close with ClosedError; close is idempotent', async () => {
    const io = await cluster.openIoctx(VMS());
    await Promise.all([io.close(), io.close()]);
    expect(io.closed).toBe(true);
    await expectError(io.listImages(), rbd.ClosedError, { call: 'rbd_list2', object: VMS() });
    await expectError(io.createImage(name('closed'), MiB), rbd.ClosedError, { call: 'rbd_create4' });
    await expectError(io.openImage('x'), rbd.ClosedError, { call: 'rbd_aio_open' });
    await nothingLeft();
  });
});

describe('Image', () => {
  let img: string;
  let image: rbd.Image;

  beforeAll(async () => {
    img = name('io');
    await vms.createImage(img, 32 * MiB, { features: ['layering', 'exclusive-lock', 'object-map', 'fast-diff', 'deep-flatten'] });
    image = await vms.openImage(img);
  });

  afterAll(async () => {
    await image?.close();
    await destroyImage(vms, img);
  });

  it('exposes name, ioctx, readOnly, snapshot', () => {
    expect(image.name).toBe(img);
    expect(image.ioctx).toBe(vms);
    expect(image.readOnly).toBe(false);
    expect(image.snapshot).toBeNull();
    expect(image.closed).toBe(false);
  });

  it('writes and reads back; a read past the end is short; into= is used', async () => {
    const data = Buffer.from('hello ceph '.repeat(1000));
    await image.write(MiB + 3, data);
    expect((await image.read(MiB + 3, data.length)).equals(data)).toBe(true);
    const into = Buffer.alloc(data.length + 10, 0xee);
    const got = await image.read(MiB + 3, data.length, into);
    expect(got.buffer).toBe(into.buffer);
    expect(got.equals(data)).toBe(true);
    const tail = await image.read(32 * MiB - 100, 4096);
    expect(tail.length).toBe(100);
    expect(tail.equals(Buffer.alloc(100))).toBe(true);
    await image.write(0, new Uint8Array([1, 2, 3]));
    expect([...(await image.read(0, 3))]).toEqual([1, 2, 3]);
    await image.flush();
  });

  it('discards and writes zeroes; diffIterate reports allocated and changed extents', async () => {
    await image.write(8 * MiB, Buffer.alloc(MiB, 0x5a));
    await image.snapCreate('d1');
    await image.write(20 * MiB, Buffer.alloc(4096, 0x11));
    const changed = await image.diffIterate({ fromSnapshot: 'd1' });
    expect(changed).toEqual([{ offset: 20 * MiB, length: 4096, exists: true }]);
    const whole = await image.diffIterate({ fromSnapshot: 'd1', wholeObject: true });
    expect(whole).toEqual([{ offset: 20 * MiB, length: 4 * MiB, exists: true }]);
    const all = await image.diffIterate();
    expect(all.some((e) => e.offset <= 8 * MiB && e.offset + e.length >= 9 * MiB && e.exists)).toBe(true);
    const window = await image.diffIterate({ offset: 16 * MiB, length: 8 * MiB });
    expect(window).toEqual([{ offset: 20 * MiB, length: 4096, exists: true }]);

    await image.discard(8 * MiB, MiB);
    expect((await image.read(8 * MiB, MiB)).equals(Buffer.alloc(MiB))).toBe(true);
    await image.write(12 * MiB, Buffer.alloc(8192, 0x77));
    await image.writeZeroes(12 * MiB, 8192);
    expect((await image.read(12 * MiB, 8192)).equals(Buffer.alloc(8192))).toBe(true);
    await image.snapRemove('d1');
  });

  it('reports size, stat, features, flags, parentInfo; resizes with progress', async () => {
    expect(await image.size()).toBe(32 * MiB);
    const stat = await image.stat();
    expect(stat).toMatchObject({ size: 32 * MiB, objectSize: 4 * MiB, numObjects: 8, order: 22, parent: null });
    expect(await image.features()).toBe(stat.features);
    expect(stat.featureNames).toEqual(['layering', 'exclusive-lock', 'object-map', 'fast-diff', 'deep-flatten']);
    expect(typeof (await image.flags())).toBe('bigint');
    expect(await image.parentInfo()).toBeNull();
    await image.resize(48 * MiB, { onProgress: () => {} });
    expect((await rbdJson<{ size: number }>(A, ['info', `${VMS()}/${img}`])).size).toBe(48 * MiB);
    expect(await image.size()).toBe(48 * MiB);
    await image.resize(32n * BigInt(MiB));
    expect(await image.size()).toBe(32 * MiB);
  });

  it('snapshots: create, exists, list, protect, set, read at snapshot, remove by name and id', async () => {
    await image.write(0, Buffer.from('before'));
    await image.snapCreate('s1');
    await image.write(0, Buffer.from('after!'));
    expect(await image.snapExists('s1')).toBe(true);
    expect(await image.snapExists('nope')).toBe(false);
    await expectError(image.snapCreate('s1'), rbd.ExistsError, { call: 'rbd_snap_create', object: `${VMS()}/${img}@s1` });

    const [s1] = (await image.snapList()).filter((s) => s.name === 's1');
    expect(s1).toMatchObject({ name: 's1', size: 32 * MiB, namespace: 'user' });
    expect(typeof s1!.id).toBe('bigint');
    expect(s1!.timestamp).toBeInstanceOf(Date);
    expect(Math.abs(s1!.timestamp!.getTime() - Date.now())).toBeLessThan(120_000);

    expect(await image.snapIsProtected('s1')).toBe(false);
    await image.snapProtect('s1');
    expect(await image.snapIsProtected('s1')).toBe(true);
    await expectError(image.snapProtect('s1'), rbd.BusyError, { call: 'rbd_snap_protect' });
    await expectError(image.snapRemove('s1'), rbd.BusyError, { call: 'rbd_snap_remove2', object: `${VMS()}/${img}@s1` });
    await image.snapUnprotect('s1');

    const atSnap = await vms.openImage(img, { snapshot: 's1' });
    expect(atSnap.snapshot).toBe('s1');
    expect((await atSnap.read(0, 6)).toString()).toBe('before');
    await expectError(atSnap.write(0, Buffer.from('x')), rbd.ReadOnlyError, { errno: 30, call: 'rbd_aio_write' });
    await atSnap.close();

    await image.snapSet('s1');
    expect(image.snapshot).toBe('s1');
    expect((await image.read(0, 6)).toString()).toBe('before');
    await image.snapSet(null);
    expect(image.snapshot).toBeNull();
    expect((await image.read(0, 6)).toString()).toBe('after!');
    await expectError(image.snapSet('nope'), rbd.NotFoundError, { call: 'rbd_snap_set' });
    await expectError(vms.openImage(img, { snapshot: 'nope' }), rbd.NotFoundError);

    await image.snapRemove('s1', { onProgress: () => {} });
    expect(await image.snapExists('s1')).toBe(false);
    await image.snapCreate('s2');
    const [s2] = (await image.snapList()).filter((s) => s.name === 's2');
    await image.snapRemoveById(s2!.id);
    expect(await image.snapList()).toEqual([]);
    await expectError(image.snapRemove('s2'), rbd.NotFoundError);
  });

  it('metadata: set, get, list, remove', async () => {
    expect(await image.metadataGet('k1')).toBeNull();
    await image.metadataSet('k1', 'v1');
    await image.metadataSet('k2', '');
    await image.metadataSet('k3', 'x'.repeat(5000));
    expect(await image.metadataGet('k1')).toBe('v1');
    expect(await image.metadataGet('k3')).toBe('x'.repeat(5000));
    expect(await image.metadataList()).toEqual({ k1: 'v1', k2: '', k3: 'x'.repeat(5000) });
    expect((await rbdCli(A, ['image-meta', 'get', `${VMS()}/${img}`, 'k1'])).trim()).toBe('v1');
    await image.metadataRemove('k1');
    await image.metadataRemove('k2');
    await image.metadataRemove('k3');
    expect(await image.metadataList()).toEqual({});
    await expectError(image.metadataRemove('k1'), rbd.NotFoundError, { call: 'rbd_metadata_remove' });
  });

  it('advisory locks: acquire, busy for others, list lockers, unlock, break (which blocklists the holder)', async () => {
    // The exclusive-lock feature manages the same cls lock, so advisory locks need an image without it.
    const lockImg = name('lock');
    await vms.createImage(lockImg, MiB, { features: ['layering'] });
    // Breaking a lock blocklists its holder (rbd_blocklist_on_break_lock), so the holder whose
    // lock gets broken is a connection of its own.
    const holder = await connect(A);
    const holderIo = await holder.openIoctx(VMS());
    const held = await holderIo.openImage(lockImg);
    try {
      await vms.openImage(lockImg).then(async (mine) => {
        await mine.lockAcquireExclusive('cookie-1');
        await expectError(mine.lockAcquireExclusive('cookie-1'), rbd.BusyError, { errno: 17, call: 'rbd_lock_exclusive' });
        const [locker] = await mine.listLockers();
        expect(locker).toMatchObject({ cookie: 'cookie-1', exclusive: true });
        expect(locker!.client).toMatch(/^client\.\d+$/);
        await expectError(held.lockAcquireExclusive('cookie-2'), rbd.BusyError, { errno: 16 });
        await mine.unlock('cookie-1');
        await expectError(mine.unlock('cookie-1'), rbd.NotFoundError, { call: 'rbd_unlock' });
        expect(await mine.listLockers()).toEqual([]);

        await held.lockAcquireExclusive('cookie-2');
        const [theirs] = await mine.listLockers();
        await mine.breakLock(theirs!.client, 'cookie-2');
        expect(await mine.listLockers()).toEqual([]);
        await mine.close();
      });
      // The blocklisted holder fails, but nothing hangs and it still closes.
      await expectError(within(30_000, held.unlock('cookie-2'), 'unlock after blocklist'), rbd.RbdError);
    } finally {
      await within(30_000, held.close().catch(() => {}), 'blocklisted image close');
      await holderIo.close();
      await holder.close();
      await vms.removeImage(lockImg);
    }
  });

  it('rejects every call on a closed image with ClosedError (EBADF) naming the C call; close is idempotent', async () => {
    const extra = await vms.openImage(img);
    await Promise.all([extra.close(), extra.close()]);
    await extra.close();
    expect(extra.closed).toBe(true);
    const calls: Array<[Promise<unknown>, string]> = [
      [extra.read(0, 1), 'rbd_aio_read'],
      [extra.write(0, Buffer.from('x')), 'rbd_aio_write'],
      [extra.discard(0, 1), 'rbd_aio_discard'],
      [extra.writeZeroes(0, 1), 'rbd_aio_write_zeroes'],
      [extra.flush(), 'rbd_aio_flush'],
      [extra.size(), 'rbd_get_size'],
      [extra.stat(), 'rbd_stat'],
      [extra.flatten(), 'rbd_flatten_with_progress'],
      [extra.snapCreate('s'), 'rbd_snap_create'],
      [extra.snapList(), 'rbd_snap_list'],
      [extra.metadataList(), 'rbd_metadata_list'],
      [extra.resize(MiB), 'rbd_resize_with_progress'],
      [extra.listChildren(), 'rbd_list_children3'],
      [extra.lockAcquireExclusive('c'), 'rbd_lock_exclusive'],
    ];
    for (const [promise, call] of calls) {
      await expectError(promise, rbd.ClosedError, { code: 'CLOSED', errno: 9, call });
    }
    expect(await image.size()).toBe(32 * MiB); // the other handle is unaffected
  });

  it('a read-only open reads but refuses writes with ReadOnlyError', async () => {
    const ro = await vms.openImage(img, { readOnly: true });
    expect(ro.readOnly).toBe(true);
    expect((await ro.read(0, 6)).length).toBe(6);
    await expectError(ro.write(0, Buffer.from('x')), rbd.ReadOnlyError, { call: 'rbd_aio_write' });
    await expectError(ro.snapCreate('nope'), rbd.ReadOnlyError);
    await ro.close();
  });
});

describe('dataObjects', () => {
  it('lists the data objects a snapshot holds, also after the head dropped them; null when the pool is too large or the image striped', async () => {
    const img = name('objects');
    await vms.createImage(img, 64 * MiB, { features: ['layering', 'deep-flatten'] });
    const striped = name('striped');
    await vms.createImage(striped, 64 * MiB, { features: ['layering', 'deep-flatten', 'striping'], stripeUnit: BigInt(MiB), stripeCount: 4n });
    try {
      const image = await vms.openImage(img);
      try {
        expect(await image.dataObjects({ maxPoolObjects: 1000 })).toEqual([]);
        // Objects 1, 2 (a write across their boundary) and 15 (the last).
        await image.write(8 * MiB - 10, Buffer.alloc(20, 1));
        await image.write(63 * MiB, Buffer.alloc(10, 2));
        await image.flush();
        expect(await image.dataObjects({ maxPoolObjects: 1000 })).toEqual([1, 2, 15]);
        await image.snapCreate('s');
        // Shrinking to 0 removes every head object; the snapshot's clones keep their names listed.
        await image.resize(0);
        expect(await image.diffIterate()).toEqual([]);
        const atSnap = await vms.openImage(img, { readOnly: true, snapshot: 's' });
        try {
          expect(await atSnap.dataObjects({ maxPoolObjects: 1000 })).toEqual([1, 2, 15]);
          expect((await atSnap.read(63 * MiB, 10)).equals(Buffer.alloc(10, 2))).toBe(true);
        } finally {
          await atSnap.close();
        }
        // This pool holds more than one object (rbd_directory, the images' headers): not listed.
        expect(await image.dataObjects({ maxPoolObjects: 1 })).toBeNull();
        await image.snapRemove('s');
      } finally {
        await image.close();
      }
      const s = await vms.openImage(striped);
      try {
        await s.write(0, Buffer.alloc(10, 3));
        expect(await s.dataObjects({ maxPoolObjects: 1000 })).toBeNull();
      } finally {
        await s.close();
      }
    } finally {
      await destroyImage(vms, img);
      await destroyImage(vms, striped);
    }
  });
});

describe('permissions', () => {
  it('nova-ro can use vms but cannot write to images (PermissionError), and leaves nothing behind', async () => {
    const ro = await connect(A, pools.novaRo(A));
    const img = name('perm');
    await images.createImage(img, 4 * MiB);
    try {
      const roImages = await ro.openIoctx(IMAGES());
      await expectError(roImages.createImage(name('perm-denied'), MiB), rbd.PermissionError, { call: 'rbd_create4' });
      await expectError(roImages.openImage(img), rbd.PermissionError, { call: 'rbd_aio_open' });
      await expectError(roImages.removeImage(img), rbd.PermissionError);
      const readable = await roImages.openImage(img, { readOnly: true });
      expect((await readable.read(0, 16)).length).toBe(16);
      await expectError(readable.write(0, Buffer.from('x')), rbd.ReadOnlyError);
      await readable.close();
      await roImages.close();

      const roVms = await ro.openIoctx(VMS());
      const own = name('perm-vms');
      await roVms.createImage(own, MiB);
      await roVms.removeImage(own);
      await roVms.close();
    } finally {
      await ro.close();
      await images.removeImage(img);
    }
    await nothingLeft();
  });
});

describe('clones', () => {
  it('clone v2 (cluster a): unprotected parent snapshot, children listing, trash-namespace snapshot, flatten detaches', async () => {
    expect(A.cloneFormat).toBe(2);
    const parent = name('v2-parent');
    const child = name('v2-child');
    await images.createImage(parent, 16 * MiB);
    const p = await images.openImage(parent);
    try {
      await p.write(0, Buffer.from('parent data'));
      await p.snapCreate('snap');
      await images.clone(parent, 'snap', vms, child, { format: 2, features: ['layering', 'deep-flatten'] });

      const atSnap = await images.openImage(parent, { snapshot: 'snap' });
      expect(await atSnap.listChildren()).toEqual([
        { pool: VMS(), namespace: '', image: child, imageId: expect.any(String), trash: false },
      ]);
      await atSnap.close();

      const c = await vms.openImage(child);
      const parentInfo = await c.parentInfo();
      expect(parentInfo).toMatchObject({ pool: IMAGES(), namespace: '', image: parent, snapshot: 'snap', trash: false });
      expect(typeof parentInfo!.snapId).toBe('bigint');
      expect((await c.read(0, 11)).toString()).toBe('parent data');
      expect((await vms.statImage(child)).parent).toMatchObject({ image: parent, snapshot: 'snap' });

      // Removing the snapshot while the clone exists moves it to the trash namespace.
      await p.snapRemove('snap');
      const snaps = await p.snapList();
      expect(snaps).toHaveLength(1);
      expect(snaps[0]).toMatchObject({ namespace: 'trash', originalName: 'snap', id: parentInfo!.snapId });
      const cli = await rbdJson<Array<{ id: number; namespace: { type: string; original_name?: string } }>>(A, [
        'snap', 'ls', '--all', `${IMAGES()}/${parent}`,
      ]);
      expect(cli[0]).toMatchObject({ id: Number(parentInfo!.snapId), namespace: { type: 'trash', original_name: 'snap' } });
      // It cannot be removed while the clone depends on it.
      await expectError(p.snapRemoveById(snaps[0]!.id), rbd.BusyError, { call: 'rbd_snap_remove_by_id' });

      const progress: number[] = [];
      await c.flatten({ onProgress: (d, t) => progress.push(d / t) });
      expect(progress.at(-1)).toBe(1);
      expect(await c.parentInfo()).toBeNull();
      expect((await c.read(0, 11)).toString()).toBe('parent data');
      await c.close();
      // The last child detached: librbd removed the trash snapshot itself (asked of the CLI: our
      // own handle learns of it only through a header watch notification).
      expect(await rbdJson(A, ['snap', 'ls', '--all', `${IMAGES()}/${parent}`])).toEqual([]);
    } finally {
      await p.close();
      await destroyImage(vms, child);
      await destroyImage(images, parent);
    }
    await nothingLeft();
  });

  it('clone v1 (cluster b): needs a protected snapshot (InvalidArgumentError), unprotect with children is BusyError', async () => {
    expect(B.cloneFormat).toBe(1);
    const cb = await connect(B);
    const io = await cb.openIoctx(VMS());
    const parent = name('v1-parent');
    const child = name('v1-child');
    await io.createImage(parent, 8 * MiB);
    const p = await io.openImage(parent);
    try {
      await p.write(0, Buffer.from('v1 parent'));
      await p.snapCreate('snap');
      await expectError(io.clone(parent, 'snap', io, child, { format: 1 }), rbd.InvalidArgumentError, {
        call: 'rbd_clone3',
        object: `${VMS()}/${parent}@snap`,
      });
      expect(await io.listImages()).not.toContain(child);
      await p.snapProtect('snap');
      await io.clone(parent, 'snap', io, child);
      await p.snapSet('snap');
      expect((await p.listChildren()).map((x) => x.image)).toEqual([child]);
      await p.snapSet(null);
      await expectError(p.snapUnprotect('snap'), rbd.BusyError, { call: 'rbd_snap_unprotect' });
      await expectError(p.snapRemove('snap'), rbd.BusyError);
      await expectError(io.removeImage(parent), rbd.RbdError);
      const c = await io.openImage(child);
      expect((await c.read(0, 9)).toString()).toBe('v1 parent');
      await c.close();
    } finally {
      await p.close();
      await destroyImage(io, child);
      await destroyImage(io, parent);
      await io.close();
      await cb.close();
    }
    await nothingLeft();
  });

  it('clone between two cluster connections is CrossClusterError and creates nothing', async () => {
    const cb = await connect(B);
    const other = await cb.openIoctx(VMS());
    const parent = name('xc-parent');
    await vms.createImage(parent, MiB);
    try {
      const p = await vms.openImage(parent);
      await p.snapCreate('s');
      await p.close();
      await expectError(vms.clone(parent, 's', other, name('xc-child')), rbd.CrossClusterError, { errno: 18 });
    } finally {
      await other.close();
      await cb.close();
      await destroyImage(vms, parent);
    }
    await nothingLeft();
  });
});
