// RbdStore specifics beyond the conformance suite, checked with the rbd CLI as an operator would: space
// used by thin writes, the image layout Glance expects, cleanup after every kind of failure, permissions,
// foreign and legacy locations, and deleting images whose snapshot has clones (v1 on b, v1 and v2 on a).
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RbdStore, type RbdStoreConfig } from '../../src/drivers/rbd/index.js';
import { CephCluster } from '../../src/ceph/index.js';
import { formatRbdLocation } from '../../src/location.js';
import { readAll, reference } from '../conformance/suite.js';
import type { Snapshot } from '../support/leftovers.js';
import { ownPools } from '../support/own-pools.js';
import { rbd, rbdJson, testbed, uniqueName, type ClusterInfo } from '../support/testbed.js';

const env = testbed();
const { a, b } = env.clusters;
const MiB = 1024 * 1024;

// Pools `images`/`vms` of this file's own on both clusters, with users made like glance, nova and nova-ro
// on them: the leftovers probe lists both pools whole, before each case and where a case checks.
const pools = ownPools('drv-rbd');
const IMAGES = () => pools.images;
const VMS = () => pools.vms;
let before: Snapshot;
beforeEach(async () => {
  before = await pools.leftovers.snapshot();
});
const nothingLeft = (since: Snapshot = before) => pools.leftovers.expectUnchanged(since);

function glanceStore(cluster: ClusterInfo, extra: Partial<RbdStoreConfig> = {}): RbdStore {
  return new RbdStore({ confPath: cluster.conf, ...pools.glance(cluster), pool: IMAGES(), ...extra });
}

/** `size` bytes in 8 MiB pieces: zeros except random data in the pieces listed; hashes computed alongside. */
function scattered(size: number, dataPieces: number[]) {
  const md5 = createHash('md5');
  const sha = createHash('sha512');
  const zero = Buffer.alloc(8 * MiB);
  async function* source() {
    for (let i = 0; i * 8 * MiB < size; i++) {
      const piece = (dataPieces.includes(i) ? randomBytes(8 * MiB) : zero).subarray(0, Math.min(8 * MiB, size - i * 8 * MiB));
      md5.update(piece);
      sha.update(piece);
      yield piece;
    }
  }
  return { source: source(), digest: () => ({ checksum: md5.digest('hex'), multihash: sha.digest('hex') }) };
}

async function usedBytes(cluster: ClusterInfo, image: string): Promise<number> {
  // One entry per snapshot plus the head; without fast-diff `total_used_size` is not printed.
  const du = await rbdJson<{ images: Array<{ used_size: number }> }>(cluster, ['du', `${IMAGES()}/${image}`]);
  return du.images.reduce((sum, entry) => sum + entry.used_size, 0);
}

/** Failure paths only: removes `images/<id>` with its locks and snapshots if a failing case left it. */
async function purgeIfLeft(cluster: ClusterInfo, id: string): Promise<void> {
  const ignore = () => '';
  const locks = JSON.parse((await rbd(cluster, ['lock', 'ls', `${IMAGES()}/${id}`, '--format', 'json']).catch(ignore)) || '[]') as Array<{ id: string; locker: string }>;
  for (const l of locks) await rbd(cluster, ['lock', 'rm', `${IMAGES()}/${id}`, l.id, l.locker]).catch(ignore);
  await rbd(cluster, ['snap', 'unprotect', `${IMAGES()}/${id}@snap`]).catch(ignore);
  await rbd(cluster, ['snap', 'purge', `${IMAGES()}/${id}`]).catch(ignore);
  await rbd(cluster, ['rm', `${IMAGES()}/${id}`]).catch(ignore);
}

async function sha512Of(store: RbdStore, location: string): Promise<string> {
  const hash = createHash('sha512');
  for await (const part of await store.get(location)) hash.update(part as Buffer);
  return hash.digest('hex');
}

describe('RbdStore writes', () => {
  const store = glanceStore(a);
  afterAll(() => store.close());

  it('stores 1 GiB holding 64 MiB of scattered data in ~64 MiB of the pool, as Glance lays images out', async () => {
    const id = uniqueName('rbd-thin');
    const input = scattered(1024 * MiB, [0, 9, 17, 40, 63, 64, 100, 127]);
    const result = await store.add(id, input.source, 1024 * MiB);
    try {
      expect(result).toMatchObject({ location: `rbd://${a.fsid}/${IMAGES()}/${id}/snap`, size: 1024 * MiB, ...input.digest() });
      const used = await usedBytes(a, id);
      expect(used).toBeGreaterThanOrEqual(64 * MiB);
      expect(used).toBeLessThanOrEqual(64 * MiB + 2 * 8 * MiB);
      const info = await rbdJson<{ size: number; order: number; object_size: number; features: string[] }>(a, ['info', `${IMAGES()}/${id}`]);
      expect(info).toMatchObject({ size: 1024 * MiB, order: 23, object_size: 8 * MiB });
      expect(info.features).toEqual(expect.arrayContaining(['layering']));
      const snaps = await rbdJson<Array<{ name: string; protected: string }>>(a, ['snap', 'ls', `${IMAGES()}/${id}`]);
      expect(snaps.map((s) => [s.name, s.protected])).toEqual([['snap', 'true']]);
      expect(await sha512Of(store, result.location)).toBe(result.multihash);
    } finally {
      await store.delete(result.location);
    }
    await nothingLeft();
  });

  it('grows an image of unknown size while writing and trims it to the exact size', async () => {
    const id = uniqueName('rbd-grow');
    const size = 200 * MiB + 12345;
    const input = scattered(size, [1, 20, 24]);
    const result = await store.add(id, input.source);
    try {
      expect(result).toMatchObject({ size, ...input.digest() });
      expect((await rbdJson<{ size: number }>(a, ['info', `${IMAGES()}/${id}@snap`])).size).toBe(size);
      expect(await store.getSize(result.location)).toBe(size);
      expect(await usedBytes(a, id)).toBeLessThanOrEqual(3 * 8 * MiB + 2 * 8 * MiB);
    } finally {
      await store.delete(result.location);
    }
  });

  it('writes every zero without thin provisioning', async () => {
    const thick = glanceStore(a, { thinProvisioning: false });
    const id = uniqueName('rbd-thick');
    try {
      expect(thick.capabilities.thinProvisioning).toBe(false);
      const result = await thick.add(id, scattered(32 * MiB, [1]).source, 32 * MiB);
      expect(await usedBytes(a, id)).toBe(32 * MiB);
      await thick.delete(result.location);
    } finally {
      await thick.close();
    }
  });

  it('honours the configured chunk size as the object size', async () => {
    const small = glanceStore(a, { chunkSizeMiB: 4 });
    const id = uniqueName('rbd-order');
    try {
      const data = randomBytes(9 * MiB);
      const result = await small.add(id, [data]);
      expect((await rbdJson<{ order: number }>(a, ['info', `${IMAGES()}/${id}`])).order).toBe(22);
      expect((await readAll(await small.get(result.location))).equals(data)).toBe(true);
      await small.delete(result.location);
    } finally {
      await small.close();
    }
  });
});

describe('RbdStore failures leave nothing', () => {
  const store = glanceStore(a);
  afterAll(() => store.close());

  it('a source that errors after several chunks were written in parallel', async () => {
    const id = uniqueName('rbd-fail-src');
    const boom = new Error('upstream reset');
    async function* source() {
      for (let i = 0; i < 12; i++) yield randomBytes(8 * MiB);
      throw boom;
    }
    await expect(store.add(id, source(), 200 * MiB)).rejects.toBe(boom);
    await nothingLeft();
  });

  it('a stream longer than announced', async () => {
    const id = uniqueName('rbd-fail-size');
    await expect(store.add(id, scattered(40 * MiB, [0, 2, 4]).source, 33 * MiB)).rejects.toMatchObject({ code: 'SIZE_MISMATCH' });
    await nothingLeft();
  });

  it('an abort while writes are in flight', async () => {
    const id = uniqueName('rbd-fail-abort');
    const controller = new AbortController();
    async function* source() {
      for (let i = 0; i < 30; i++) {
        if (i === 10) controller.abort();
        yield randomBytes(8 * MiB);
      }
    }
    await expect(store.add(id, source(), undefined, { signal: controller.signal })).rejects.toMatchObject({ code: 'CANCELLED' });
    await nothingLeft();
  });

  it('permission denied: client.nova-ro writing images, client.glance writing vms', async () => {
    const id = uniqueName('rbd-fail-perm');
    const readOnly = new RbdStore({ confPath: a.conf, ...pools.novaRo(a), pool: IMAGES() });
    const wrongPool = new RbdStore({ confPath: a.conf, ...pools.glance(a), pool: VMS() });
    try {
      await expect(readOnly.add(id, [randomBytes(MiB)], MiB)).rejects.toMatchObject({ code: 'PERMISSION' });
      await expect(wrongPool.add(id, [randomBytes(MiB)], MiB)).rejects.toMatchObject({ code: 'PERMISSION' });
    } finally {
      await readOnly.close();
      await wrongPool.close();
    }
    await nothingLeft();
  });

  it('a pool that does not exist', async () => {
    const missing = new RbdStore({ confPath: a.conf, user: 'admin', pool: uniqueName('no-such-pool') });
    try {
      await expect(missing.add(uniqueName('rbd-nopool'), [Buffer.alloc(1)], 1)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    } finally {
      await missing.close();
    }
  });
});

describe('RbdStore reading and deleting', () => {
  const store = glanceStore(a);
  afterAll(() => store.close());

  it('lets client.nova-ro read an image but not delete it', async () => {
    const data = randomBytes(3 * MiB + 5);
    const { location } = await store.add(uniqueName('rbd-ro'), [data]);
    const reader = new RbdStore({ confPath: a.conf, ...pools.novaRo(a), pool: IMAGES() });
    try {
      expect(await reader.getSize(location)).toBe(data.length);
      expect((await readAll(await reader.get(location, { offset: MiB, length: MiB }))).equals(data.subarray(MiB, 2 * MiB))).toBe(true);
      await expect(reader.delete(location)).rejects.toMatchObject({ code: 'PERMISSION' });
      expect(await store.getSize(location)).toBe(data.length);
    } finally {
      await reader.close();
      await store.delete(location);
    }
  });

  it('refuses a location of another cluster with ForeignLocation', async () => {
    const onB = glanceStore(b);
    const { location } = await onB.add(uniqueName('rbd-foreign'), [randomBytes(1000)]);
    try {
      for (const call of [() => store.get(location), () => store.getSize(location), () => store.delete(location)]) {
        await expect(call()).rejects.toMatchObject({ code: 'FOREIGN_LOCATION' });
      }
      expect(await onB.getSize(location)).toBe(1000);
    } finally {
      await onB.delete(location);
      await onB.close();
    }
  });

  it('reads a legacy rbd://<image> location at the image head in the configured pool', async () => {
    const id = uniqueName('rbd-legacy');
    const data = randomBytes(2 * MiB);
    const { location } = await store.add(id, [data]);
    try {
      expect(await store.getSize(`rbd://${id}`)).toBe(data.length);
      expect((await readAll(await store.get(`rbd://${id}`))).equals(data)).toBe(true);
      // The legacy form names no snapshot: like glance_store, deleting it meets `snap` and refuses.
      await expect(store.delete(`rbd://${id}`)).rejects.toMatchObject({ code: 'IN_USE' });
      expect(await store.getSize(location)).toBe(data.length);
    } finally {
      await store.delete(location);
    }
  });

  it('reports a missing snapshot or pool in a location as not found', async () => {
    const id = uniqueName('rbd-nosnap');
    const { location } = await store.add(id, [randomBytes(100)]);
    try {
      await expect(store.getSize(formatRbdLocation(a.fsid, IMAGES(), id, 'other'))).rejects.toMatchObject({ code: 'NOT_FOUND' });
      await expect(store.getSize(formatRbdLocation(a.fsid, 'nopool', id, 'snap'))).rejects.toMatchObject({ code: 'NOT_FOUND' });
    } finally {
      await store.delete(location);
    }
  });

  it('reads with bounded read-ahead: a paused reader holds at most a few chunks', async () => {
    const small = glanceStore(a, { chunkSizeMiB: 1 });
    const data = randomBytes(32 * MiB);
    const { location } = await small.add(uniqueName('rbd-backpressure'), [data]);
    try {
      const stream = await small.get(location);
      const first = (await stream[Symbol.asyncIterator]().next()).value as Buffer;
      expect(first.length).toBe(MiB);
      await new Promise((r) => setTimeout(r, 300));
      expect(stream.readableLength).toBeLessThanOrEqual(2 * MiB);
      stream.destroy();
    } finally {
      await small.delete(location);
      await small.close();
    }
  });
});

describe('deleting an image whose snapshot has clones', () => {
  type Case = { cluster: ClusterInfo; title: string; cloneArgs: string[]; unprotectFirst?: boolean; sameChildPool?: boolean; trashChild?: boolean };
  const cases: Case[] = [
    { cluster: b, title: 'cluster b, clone v1 in vms', cloneArgs: [] },
    { cluster: a, title: 'cluster a, clone v2 in vms', cloneArgs: ['--rbd-default-clone-format', '2'] },
    { cluster: a, title: 'cluster a, clone v1 in vms', cloneArgs: ['--rbd-default-clone-format', '1'] },
    { cluster: a, title: 'cluster a, clone v2 of an unprotected snap', cloneArgs: ['--rbd-default-clone-format', '2'], unprotectFirst: true },
    { cluster: a, title: 'cluster a, clone v2 in the same pool', cloneArgs: ['--rbd-default-clone-format', '2'], sameChildPool: true },
    { cluster: a, title: 'cluster a, clone v2 moved to the trash', cloneArgs: ['--rbd-default-clone-format', '2'], trashChild: true },
    { cluster: b, title: 'cluster b, clone v1 moved to the trash', cloneArgs: [], trashChild: true },
  ];
  const stores = new Map<ClusterInfo, RbdStore>();
  beforeAll(() => {
    stores.set(a, glanceStore(a));
    stores.set(b, glanceStore(b));
  });
  afterAll(async () => {
    for (const s of stores.values()) await s.close();
  });

  for (const c of cases) {
    it(`refuses with IN_USE and changes nothing: ${c.title}`, async () => {
      const store = stores.get(c.cluster)!;
      const id = uniqueName('rbd-parent');
      const childPool = c.sameChildPool ? IMAGES() : VMS();
      const child = `${id}-child`;
      const { location } = await store.add(id, [randomBytes(2 * MiB)]);
      if (c.unprotectFirst) await rbd(c.cluster, ['snap', 'unprotect', `${IMAGES()}/${id}@snap`]);
      await rbd(c.cluster, ['clone', ...c.cloneArgs, `${IMAGES()}/${id}@snap`, `${childPool}/${child}`]);
      let trashId: string | null = null;
      if (c.trashChild) {
        await rbd(c.cluster, ['trash', 'mv', `${childPool}/${child}`]);
        trashId = (await rbdJson<Array<{ id: string; name: string }>>(c.cluster, ['trash', 'ls', childPool])).find((t) => t.name === child)!.id;
      }
      const before = await rbdJson<unknown[]>(c.cluster, ['snap', 'ls', '--all', `${IMAGES()}/${id}`]);
      const err = await store.delete(location).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toMatchObject({ code: 'IN_USE' });
      if (c.sameChildPool && !c.trashChild) expect((err as Error).message).toContain(child);
      expect(await rbdJson<unknown[]>(c.cluster, ['snap', 'ls', '--all', `${IMAGES()}/${id}`])).toEqual(before);
      expect(await store.getSize(location)).toBe(2 * MiB);

      // Once the clone is gone, the delete goes through.
      if (trashId) await rbd(c.cluster, ['trash', 'rm', `${childPool}/${trashId}`]);
      else await rbd(c.cluster, ['rm', `${childPool}/${child}`]);
      await store.delete(location);
      await nothingLeft();
    });
  }

  it('refuses with IN_USE and changes nothing when the image has another snapshot', async () => {
    const store = stores.get(a)!;
    const id = uniqueName('rbd-extra-snap');
    const { location } = await store.add(id, [randomBytes(MiB)]);
    try {
      await rbd(a, ['snap', 'create', `${IMAGES()}/${id}@backup`]);
      const err = await store.delete(location).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toMatchObject({ code: 'IN_USE', context: { snapshots: ['backup'] } });
      expect((err as Error).message).toMatch(/other snapshots: backup/);
      const snaps = await rbdJson<Array<{ name: string; protected: string }>>(a, ['snap', 'ls', `${IMAGES()}/${id}`]);
      expect(snaps.map((s) => [s.name, s.protected])).toEqual([['snap', 'true'], ['backup', 'false']]);
      await rbd(a, ['snap', 'rm', `${IMAGES()}/${id}@backup`]);
      await store.delete(location);
    } finally {
      await purgeIfLeft(a, id);
    }
    await nothingLeft();
  });
});

describe('hashes of what RbdStore stored match what was sent', () => {
  it('for random data across many parallel chunk writes', async () => {
    const store = glanceStore(b, { chunkSizeMiB: 1, writesInFlight: 8 });
    const data = randomBytes(40 * MiB + 3);
    try {
      const result = await store.add(uniqueName('rbd-hash'), [data]);
      expect(result).toMatchObject(reference(data));
      expect(await sha512Of(store, result.location)).toBe(reference(data).multihash);
      await store.delete(result.location);
    } finally {
      await store.close();
    }
  });
});

describe('RbdStore marks, clone finalize and discard on a clone of a disk Glance cannot read', () => {
  // The direct path's situation: a clone in `images` whose parent is a disk in `vms`. client.glance may not
  // read `vms`, and librbd opens the parent with the clone; client.nova (the disks' user) can.
  let nova: CephCluster;
  let disk: string;
  /** Images the cases made in `images`: removed here when a failing case left them (else the disk stays). */
  const made: string[] = [];
  /** The pools before the disk was made: afterAll removes it and expects exactly this. */
  let beforeDisk: Snapshot;
  beforeAll(async () => {
    beforeDisk = await pools.leftovers.snapshot();
    nova = await CephCluster.connect({ confPath: a.conf, ...pools.nova(a) });
    disk = uniqueName('rbd-disk');
    await rbd(a, ['create', `${VMS()}/${disk}`, '--size', '4M']);
    await rbd(a, ['snap', 'create', `${VMS()}/${disk}@base`]);
    await rbd(a, ['snap', 'protect', `${VMS()}/${disk}@base`]);
  });
  afterAll(async () => {
    for (const id of made) await purgeIfLeft(a, id);
    await rbd(a, ['snap', 'unprotect', `${VMS()}/${disk}@base`]);
    await rbd(a, ['snap', 'rm', `${VMS()}/${disk}@base`]);
    await rbd(a, ['rm', `${VMS()}/${disk}`]);
    await nothingLeft(beforeDisk);
    await nova.close();
  });

  async function cloneOfDisk(): Promise<string> {
    const id = uniqueName('rbd-clone');
    made.push(id);
    await rbd(a, ['clone', '--rbd-default-clone-format', '2', `${VMS()}/${disk}@base`, `${IMAGES()}/${id}`]);
    return id;
  }

  it('needs parentReader to read the mark of such a clone; with it, marks, lists, clears and discards', async () => {
    const id = await cloneOfDisk();
    const plain = glanceStore(a);
    const store = glanceStore(a, { parentReader: nova });
    try {
      await expect(plain.readPending(id)).rejects.toMatchObject({ code: 'PERMISSION' });
      expect(await plain.exists(id)).toBe(true);
      expect(await store.exists(id)).toBe(true);
      await store.markPending(id, 'run 7');
      expect(await store.readPending(id)).toBe('run 7');
      expect(await rbd(a, ['image-meta', 'get', `${IMAGES()}/${id}`, 'snapstore.pending'])).toBe('run 7\n');
      expect((await store.listPending()).filter((e) => e.imageId === id)).toEqual([
        { imageId: id, location: formatRbdLocation(a.fsid, IMAGES(), id, 'snap'), marker: 'run 7' },
      ]);
      await store.clearPending(id);
      expect(await store.readPending(id)).toBeNull();
      await store.markPending(id, 'run 8');
      expect(await store.discard(id)).toBe(true);
      expect(await store.exists(id)).toBe(false);
      expect(await store.discard(id)).toBe(false);
    } finally {
      await plain.close();
      await store.close();
    }
    await nothingLeft();
  });

  it("marks and finalizes a clone through the caller's own handle; discard removes the finalized snapshot too", async () => {
    const id = await cloneOfDisk();
    const store = glanceStore(a, { parentReader: nova });
    const clones = store.clones;
    const image = await (await nova.pool(IMAGES())).openImage(id);
    try {
      expect(await clones.where()).toEqual({ fsid: a.fsid, pool: IMAGES() });
      await clones.markPending(image, 'direct run');
      expect(await store.readPending(id)).toBe('direct run');
      await expect(clones.finalize(`${id}-other`, image)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      const location = await clones.finalize(id, image);
      expect(location).toBe(await store.locationOf(id));
      const snaps = await rbdJson<Array<{ name: string; protected: string }>>(a, ['snap', 'ls', `${IMAGES()}/${id}`]);
      expect(snaps.map((s) => [s.name, s.protected])).toEqual([['snap', 'true']]);
      await clones.clearPending(image);
      await clones.clearPending(image);
      expect(await store.readPending(id)).toBeNull();
      const diskImage = await (await nova.pool(VMS())).openImage(disk, { readOnly: true });
      try {
        await expect(clones.markPending(diskImage, 'x')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      } finally {
        await diskImage.close();
      }
    } finally {
      await image.close();
    }
    try {
      expect(await store.discard(id)).toBe(true);
    } finally {
      await store.close();
    }
    await nothingLeft();
  });

  it("discard breaks another client's lock, which ends its watch, instead of waiting for it", async () => {
    const store = glanceStore(a);
    const id = uniqueName('rbd-locked');
    made.push(id);
    await store.add(id, [randomBytes(MiB)], MiB, { pending: 'killed run' });
    // A second connection stands in for a process that died holding the image open and locked: its watch
    // would make librbd refuse the removal (EBUSY) for as long as it lives, far past discard's 45 s.
    const holder = await CephCluster.connect({ confPath: a.conf, ...pools.glance(a) });
    const held = await (await holder.pool(IMAGES())).openImage(id);
    try {
      await held.lockAcquireExclusive('snapstore-test');
      expect((await held.listLockers()).map((l) => l.cookie)).toEqual(['snapstore-test']);
      expect(await store.discard(id)).toBe(true);
      expect(await store.exists(id)).toBe(false);
    } finally {
      await held.close().catch(() => {});
      await holder.close().catch(() => {});
      await store.close();
    }
    await nothingLeft();
  });
});
