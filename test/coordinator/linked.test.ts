// Linked snapshots (flatten: never) on the shared test bed, in pools and with users of this file's own:
// the image stays a clone of the disk's trashed snapshot, reads as the disk did at snapshot time whatever
// happens to the disk, and deleting the image and the disk in either order leaves nothing in either pool
// (trash included) — with the image store's user allowed to write the disks' pool (Ceph finishes by
// itself) or only to read it (then `snapstore gc` does). Refused (exit class 2, nothing created) without
// clone v2, without nova's trash option, or when the store's user cannot read the disks.
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { Cluster, PermissionError } from 'ceph-rbd-napi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGlance, stopGlance, type GlanceInfo } from '../../scripts/testbed.mjs';
import type { RbdSourceConfig, RbdTargetConfig } from '../../src/config/types.js';
import { FLATTEN_KEY, Flattener, type CoordinatorEvent } from '../../src/coordinator/index.js';
import { withFaults, type FaultPoint, type StepName } from '../../src/coordinator/faults.js';
import { RbdStore } from '../../src/drivers/rbd.js';
import { ownPools, type OwnUser } from '../support/own-pools.js';
import { ceph, testbed, uniqueName, type ClusterInfo } from '../support/testbed.js';
import { coordinator, deleteGlanceImage, exportMd5, glanceStatus } from './helpers.js';

const run = promisify(execFile);
const pools = ownPools('linked');
const a = () => testbed().clusters.a;
const b = () => testbed().clusters.b;

/** nova's ceph.conf with the trash option in its client section, and one without (ownPools' copy). */
const confs = new Map<string, { trash: string; plain: string }>();
/** A store user that may only read the disks' pool (Glance's, as instant snapshots recommend). */
const readOnlyStore = new Map<string, OwnUser>();

beforeAll(async () => {
  for (const cluster of [a(), b()]) {
    const plain = pools.conf(cluster);
    const nova = pools.nova(cluster).user;
    const trash = `${plain}.trash`;
    const ro = { user: `glance-ro-${pools.images}`, keyring: `${plain}.glance-ro.keyring` };
    const text = readFileSync(plain, 'utf8').replace(`[client.${nova}]\n`, `[client.${nova}]\nrbd_move_parent_to_trash_on_remove = true\n`);
    // The read-only store user's keyring is named here too, for the CLI (config files name only a user).
    writeFileSync(trash, `${text}\n[client.${ro.user}]\nkeyring = ${ro.keyring}\n`);
    confs.set(cluster.fsid, { trash, plain });
    await ceph(cluster, ['auth', 'get-or-create', `client.${ro.user}`, 'mon', 'profile rbd', 'osd', `profile rbd pool=${pools.images}, profile rbd-read-only pool=${pools.vms}`, '-o', ro.keyring]);
    readOnlyStore.set(cluster.fsid, ro);
  }
  return async () => {
    for (const cluster of [a(), b()]) await ceph(cluster, ['auth', 'del', `client.${readOnlyStore.get(cluster.fsid)!.user}`]);
  };
}, 120_000);

function source(cluster: ClusterInfo, trash = true): RbdSourceConfig {
  const conf = confs.get(cluster.fsid)!;
  return { confPath: trash ? conf.trash : conf.plain, ...pools.nova(cluster), pool: pools.vms, connectTimeoutMs: 10_000 };
}

type StoreUser = 'writes-disks' | 'reads-disks' | 'no-disks';
function target(cluster: ClusterInfo, who: StoreUser): RbdTargetConfig {
  const user = who === 'writes-disks' ? pools.nova(cluster) : who === 'reads-disks' ? readOnlyStore.get(cluster.fsid)! : pools.glance(cluster);
  return { kind: 'rbd', confPath: pools.conf(cluster), ...user, pool: pools.images, chunkSizeMiB: 8, thinProvisioning: true, connectTimeoutMs: 10_000 };
}

/** The rbd CLI as `user` with `conf` (nova's deletes read its client section, trash option included). */
async function rbdAs(conf: string, user: OwnUser, args: string[]): Promise<string> {
  const { stdout } = await run('rbd', ['-c', conf, '--id', user.user, '--keyring', user.keyring, ...args]);
  return stdout;
}

/** A disk in the own `vms` pool, made and written as nova. */
async function makeDisk(cluster: ClusterInfo, sizeMiB = 32): Promise<{ name: string; uri: string; data: Buffer }> {
  const name = uniqueName('linked-disk');
  await rbdAs(source(cluster).confPath, pools.nova(cluster), ['create', `${pools.vms}/${name}`, '--size', `${sizeMiB}M`]);
  const data = randomBytes(3 * 1024 * 1024);
  await writeAs(cluster, `${pools.vms}/${name}`, 4 * 1024 * 1024, data);
  return { name, uri: `rbd://${cluster.fsid}/${pools.vms}/${name}`, data };
}

/** Writes as nova (a guest writing to its disk); `data: null` discards that range (a guest's TRIM). */
async function writeAs(cluster: ClusterInfo, spec: string, offset: number, data: Buffer | null, length = 0): Promise<void> {
  const [pool, name] = spec.split('/') as [string, string];
  const nova = await Cluster.connect({ confPath: source(cluster).confPath, ...pools.nova(cluster) });
  try {
    const io = await nova.openIoctx(pool);
    const image = await io.openImage(name);
    if (data) await image.write(offset, data);
    else await image.discard(offset, length);
    await image.flush();
    await image.close();
    await io.close();
  } finally {
    await nova.close();
  }
}

/** Deletes a disk the way nova does (rbd_remove as nova's user, its ceph.conf section read). */
async function novaDeletes(cluster: ClusterInfo, disk: string, trash = true): Promise<void> {
  await rbdAs(source(cluster, trash).confPath, pools.nova(cluster), ['rm', '--no-progress', `${pools.vms}/${disk}`]);
}

/** Deletes an image through the image store as `who` (what glance_store does for Glance's DELETE). */
async function storeDeletes(cluster: ClusterInfo, who: StoreUser, location: string): Promise<void> {
  const t = target(cluster, who);
  const store = new RbdStore({ confPath: t.confPath, user: t.user, ...(t.keyring ? { keyring: t.keyring } : {}), pool: t.pool });
  try {
    await store.delete(location);
  } finally {
    await store.close();
  }
}

async function trashOf(cluster: ClusterInfo, pool: string): Promise<Array<{ id: string; name: string; source: string }>> {
  const admin = await Cluster.connect({ confPath: cluster.conf, user: 'admin' });
  try {
    const io = await admin.openIoctx(pool);
    const out = await io.trashList();
    await io.close();
    return out;
  } finally {
    await admin.close();
  }
}

async function linkedSnapshot(cluster: ClusterInfo, disk: string, who: StoreUser, events: CoordinatorEvent[] = [], extra = {}) {
  const c = coordinator({ source: source(cluster), target: target(cluster, who) }, events);
  try {
    return await c.snapshot(disk, { flatten: 'never', ...extra });
  } finally {
    await c.close();
  }
}

describe('linked snapshots: preconditions', () => {
  it('check lists each precondition ok, and warns that a read-only store user leaves deleted disks to gc', async () => {
    const disk = await makeDisk(a());
    const c = coordinator({ source: source(a()), target: target(a(), 'reads-disks') });
    try {
      const plan = await c.check(disk.uri);
      expect(plan.linked?.possible).toBe(true);
      const byCode = Object.fromEntries(plan.linked!.reasons.map((r) => [r.code, r]));
      expect(Object.keys(byCode)).toEqual(['LINKED_CLONE_V2', 'LINKED_TRASH_ON_REMOVE', 'LINKED_STORE_READS_DISKS', 'LINKED_PARENT_CLEANUP']);
      expect(plan.linked!.reasons.every((r) => r.ok)).toBe(true);
      expect(byCode.LINKED_PARENT_CLEANUP!.message).toMatch(/^warning: .*may only read pool .*snapstore gc/);
    } finally {
      await c.close();
    }
    await novaDeletes(a(), disk.name);
  });

  it.each([
    ['nova lacks the trash option', () => a(), false, 'writes-disks', 'LINKED_TRASH_ON_REMOVE', 'rbd_move_parent_to_trash_on_remove = true'],
    ["the store's user cannot read the disks", () => a(), true, 'no-disks', 'LINKED_STORE_READS_DISKS', 'profile rbd-read-only pool='],
    ['the cluster allows only clone v1', () => b(), true, 'writes-disks', 'LINKED_CLONE_V2', 'ceph osd set-require-min-compat-client mimic'],
  ] as const)('%s: check says NO with the fix, and flatten never fails with MODE_NOT_POSSIBLE creating nothing', async (_, cluster, trash, who, code, fix) => {
    const disk = await makeDisk(cluster());
    const nothing = await pools.leftovers.snapshot();
    const c = coordinator({ source: source(cluster(), trash), target: target(cluster(), who) });
    try {
      const plan = await c.check(disk.uri);
      expect(plan.linked?.possible).toBe(false);
      expect(plan.linked!.reasons.find((r) => r.code === code)).toMatchObject({ ok: false, fix: expect.stringContaining(fix) });
      const err = await c.snapshot(disk.uri, { flatten: 'never' }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'MODE_NOT_POSSIBLE', context: expect.objectContaining({ fix: expect.stringContaining(fix) }) });
    } finally {
      await c.close();
    }
    await pools.leftovers.expectUnchanged(nothing);
    await rbdAs(source(cluster()).confPath, pools.nova(cluster()), ['rm', '--no-progress', `${pools.vms}/${disk.name}`]);
  });
});

describe('linked snapshots: the image', () => {
  it('is a clone of the trashed disk snapshot, says flatten never and depth 1, and keeps its content after the disk is overwritten', async () => {
    const disk = await makeDisk(a());
    const before = await exportMd5(a(), `${pools.vms}/${disk.name}`);
    const result = await linkedSnapshot(a(), disk.uri, 'reads-disks');
    expect(result).toMatchObject({ method: 'direct', flatten: 'never', chain: { depth: 1, limit: 'none' } });
    // The disk keeps only its snapshot, in the trash namespace, for the clone.
    const snaps = JSON.parse(await rbdAs(source(a()).confPath, pools.nova(a()), ['snap', 'ls', '--all', '--format', 'json', `${pools.vms}/${disk.name}`])) as Array<{
      namespace: { type: string; original_name?: string };
    }>;
    expect(snaps).toEqual([expect.objectContaining({ namespace: expect.objectContaining({ type: 'trash', original_name: expect.stringMatching(/^snapstore-/) }) })]);
    const admin = await Cluster.connect({ confPath: a().conf, user: 'admin' });
    try {
      const io = await admin.openIoctx(pools.images);
      const st = await io.statImage(result.imageId);
      expect(st.parent).toMatchObject({ pool: pools.vms, image: disk.name, trash: false });
      await io.close();
    } finally {
      await admin.close();
    }
    await writeAs(a(), `${pools.vms}/${disk.name}`, 0, randomBytes(8 * 1024 * 1024));
    expect(await exportMd5(a(), `${pools.vms}/${disk.name}`)).not.toBe(before);
    expect(await exportMd5(a(), `${pools.images}/${result.imageId}@snap`)).toBe(before);
    await storeDeletes(a(), 'reads-disks', result.location);
    await novaDeletes(a(), disk.name);
  });
});

describe('linked snapshots: deletes in either order leave nothing', () => {
  it.each(['writes-disks', 'reads-disks'] as const)('image first (store user %s), then the disk as nova', async (who) => {
    const nothing = await pools.leftovers.snapshot();
    const disk = await makeDisk(a());
    const result = await linkedSnapshot(a(), disk.uri, who);
    await storeDeletes(a(), who, result.location);
    await novaDeletes(a(), disk.name);
    await pools.leftovers.expectUnchanged(nothing);
  });

  it('disk first (overwritten, discarded, then to the trash; the image still reads it as it was), then the image with a store user that may write the disks: Ceph finishes', async () => {
    const nothing = await pools.leftovers.snapshot();
    const disk = await makeDisk(a());
    const before = await exportMd5(a(), `${pools.vms}/${disk.name}`);
    const result = await linkedSnapshot(a(), disk.uri, 'writes-disks');
    await writeAs(a(), `${pools.vms}/${disk.name}`, 0, randomBytes(4 * 1024 * 1024));
    await writeAs(a(), `${pools.vms}/${disk.name}`, 4 * 1024 * 1024, null, 4 * 1024 * 1024);
    expect(await exportMd5(a(), `${pools.vms}/${disk.name}`)).not.toBe(before);
    await novaDeletes(a(), disk.name);
    expect(await trashOf(a(), pools.vms)).toEqual([expect.objectContaining({ name: disk.name, source: 'user_parent' })]);
    expect(await exportMd5(a(), `${pools.images}/${result.imageId}@snap`)).toBe(before);
    await storeDeletes(a(), 'writes-disks', result.location);
    await pools.leftovers.expectUnchanged(nothing);
  });

  it('disk first, then the image with a read-only store user: the disk stays in the trash until gc removes it (and gc keeps it while the image lives)', async () => {
    const nothing = await pools.leftovers.snapshot();
    const disk = await makeDisk(a());
    const before = await exportMd5(a(), `${pools.vms}/${disk.name}`);
    const result = await linkedSnapshot(a(), disk.uri, 'reads-disks');
    await novaDeletes(a(), disk.name);
    const gc = coordinator({ source: source(a()), target: target(a(), 'reads-disks') });
    try {
      const kept = await gc.gc({ olderThanMs: 0 });
      expect(kept.removed.filter((l) => l.kind === 'trashed-disk')).toEqual([]);
      expect(kept.seen).toContainEqual(expect.objectContaining({ kind: 'trashed-disk', action: 'kept', why: 'linked images still use it' }));
      expect(await exportMd5(a(), `${pools.images}/${result.imageId}@snap`)).toBe(before);
      await storeDeletes(a(), 'reads-disks', result.location);
      // The catch: librbd could not remove the trashed parent as the read-only user.
      expect(await trashOf(a(), pools.vms)).toEqual([expect.objectContaining({ name: disk.name, source: 'user_parent' })]);
      const report = await gc.gc({ olderThanMs: 0 });
      expect(report.removed).toEqual([expect.objectContaining({ kind: 'trashed-disk', location: expect.stringContaining(`/${disk.name}#trash:`) })]);
    } finally {
      await gc.close();
    }
    await pools.leftovers.expectUnchanged(nothing);
  });

  it('gc leaves alone a trashed disk snapstore did not make a parent of', async () => {
    const disk = await makeDisk(a());
    const conf = source(a()).confPath;
    const nova = pools.nova(a());
    await rbdAs(conf, nova, ['snap', 'create', `${pools.vms}/${disk.name}@mine`]);
    await rbdAs(conf, nova, ['clone', '--rbd-default-clone-format', '2', `${pools.vms}/${disk.name}@mine`, `${pools.vms}/${disk.name}-child`]);
    await rbdAs(conf, nova, ['snap', 'rm', '--no-progress', `${pools.vms}/${disk.name}@mine`]);
    await novaDeletes(a(), disk.name);
    // As if its child were gone without librbd finishing: only the trash entry is left, and it is not ours.
    const gc = coordinator({ source: source(a()), target: target(a(), 'reads-disks') });
    try {
      const report = await gc.gc({ olderThanMs: 0 });
      expect(report.seen.filter((l) => l.kind === 'trashed-disk')).toEqual([]);
    } finally {
      await gc.close();
    }
    expect((await trashOf(a(), pools.vms)).map((e) => e.name)).toContain(disk.name);
    await rbdAs(conf, nova, ['rm', '--no-progress', `${pools.vms}/${disk.name}-child`]);
    expect((await trashOf(a(), pools.vms)).map((e) => e.name)).not.toContain(disk.name);
  });
});

/** Objects of `pool` (rados ls, as admin) whose names hold any of `needles` (an image's name or RBD id). */
async function radosObjectsOf(cluster: ClusterInfo, pool: string, needles: string[]): Promise<string[]> {
  const { stdout } = await run('rados', ['-c', cluster.conf, '--id', 'admin', '-p', pool, 'ls']);
  return stdout.split('\n').filter((o) => o && needles.some((n) => o.includes(n)));
}

/** The RBD id of an image (its header, data and object-map objects are named by it). */
async function rbdIdOf(cluster: ClusterInfo, pool: string, image: string): Promise<string> {
  const { stdout } = await run('rbd', ['-c', cluster.conf, '--id', 'admin', 'info', '--format', 'json', `${pool}/${image}`]);
  return (JSON.parse(stdout) as { id: string }).id;
}

describe('linked snapshots: through a real Glance', () => {
  // A glance-api of this file's own, storing into the own images pool as the read-only store user (the
  // caps instant snapshots recommend): Glance serves a linked image and deletes it through that user.
  let dir: string | undefined;
  let glance: GlanceInfo | undefined;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'linked-glance-'));
    const ro = readOnlyStore.get(a().fsid)!;
    glance = await startGlance(join(dir, 'glance'), a().dir, { pool: pools.images, user: ro.user, cephConf: confs.get(a().fsid)!.trash });
  }, 180_000);
  afterAll(async () => {
    if (!dir) return;
    await stopGlance(join(dir, 'glance'));
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('image first through Glance DELETE, then the disk as nova: rbd ls, rbd trash ls --all and rados ls of both pools hold nothing of them', async () => {
    const url = glance!.url;
    const nothing = await pools.leftovers.snapshot({ glance: [url] });
    const disk = await makeDisk(a());
    const before = await exportMd5(a(), `${pools.vms}/${disk.name}`);
    const diskId = await rbdIdOf(a(), pools.vms, disk.name);
    const c = coordinator({ source: source(a()), target: target(a(), 'reads-disks'), glance: { endpoint: url } });
    const result = await c.snapshot(disk.uri, { flatten: 'never' }).finally(() => c.close());
    expect(result).toMatchObject({ method: 'direct', flatten: 'never', glance: { id: result.imageId, status: 'active' } });
    const imageId = await rbdIdOf(a(), pools.images, result.imageId);
    // Glance serves the linked image (read through to the disk's trashed snapshot) as the disk was.
    const served = await fetch(`${url}/v2/images/${result.imageId}/file`);
    expect(served.status).toBe(200);
    expect(createHash('md5').update(Buffer.from(await served.arrayBuffer())).digest('hex')).toBe(before);
    await deleteGlanceImage(url, result.imageId);
    expect(await glanceStatus(url, result.imageId)).toBe('absent');
    // The clone is gone and detached from the disk's trashed snapshot, but librbd removes that snapshot as
    // the deleting user, which may only read the disks' pool: it stays on the disk, with no child, holding
    // what the disk overwrites, until the disk is deleted (below), which takes it along.
    const novaConf = source(a()).confPath;
    const diskSnaps = JSON.parse(await rbdAs(novaConf, pools.nova(a()), ['snap', 'ls', '--all', '--format', 'json', `${pools.vms}/${disk.name}`])) as Array<{
      id: number;
      namespace: { type: string; original_name?: string };
    }>;
    expect(diskSnaps).toEqual([expect.objectContaining({ namespace: { type: 'trash', original_name: expect.stringMatching(/^snapstore-/) } })]);
    expect(await rbdAs(novaConf, pools.nova(a()), ['children', '--all', '--snap-id', String(diskSnaps[0]!.id), `${pools.vms}/${disk.name}`])).toBe('');
    await novaDeletes(a(), disk.name);
    const needles = [disk.name, diskId, result.imageId, imageId];
    for (const pool of [pools.vms, pools.images]) {
      expect(await rbdAs(pools.conf(a()), pools.nova(a()), ['ls', pool])).not.toMatch(new RegExp(`${disk.name}|${result.imageId}`));
      expect(await rbdAs(pools.conf(a()), pools.nova(a()), ['trash', 'ls', '--all', pool])).toBe('');
      expect(await radosObjectsOf(a(), pool, needles), `rados ls ${pool}`).toEqual([]);
    }
    await pools.leftovers.expectUnchanged(nothing);
  });
});

describe('linked snapshots: removing the disk, detaching on demand', () => {
  it('prepareSourceRemoval reports the linked images and needs nothing else with the trash option; without it, IN_USE naming the option', async () => {
    const disk = await makeDisk(a());
    const result = await linkedSnapshot(a(), disk.uri, 'writes-disks');
    for (const trash of [true, false]) {
      const c = coordinator({ source: source(a(), trash), target: target(a(), 'writes-disks') });
      try {
        const outcome = await c.prepareSourceRemoval(disk.uri).catch((e: unknown) => e);
        if (trash) expect(outcome).toMatchObject({ linked: [result.imageId], flattened: [] });
        else expect(outcome).toMatchObject({ code: 'IN_USE', message: expect.stringContaining('rbd_move_parent_to_trash_on_remove = true') });
      } finally {
        await c.close();
      }
    }
    await novaDeletes(a(), disk.name);
    await storeDeletes(a(), 'writes-disks', result.location);
  });

  it('a flattener named the image detaches it: no parent left, the trashed disk gone with it, content kept', async () => {
    const nothing = await pools.leftovers.snapshot();
    const disk = await makeDisk(a());
    const before = await exportMd5(a(), `${pools.vms}/${disk.name}`);
    const result = await linkedSnapshot(a(), disk.uri, 'reads-disks');
    await novaDeletes(a(), disk.name);
    const f = new Flattener({ source: source(a()), target: { pool: pools.images }, images: [result.imageId] });
    try {
      expect(await f.runOnce()).toMatchObject({ flattened: [result.imageId], failed: [] });
    } finally {
      await f.close();
    }
    expect(await trashOf(a(), pools.vms)).toEqual([]);
    expect(await exportMd5(a(), `${pools.images}/${result.imageId}@snap`)).toBe(before);
    await storeDeletes(a(), 'reads-disks', result.location);
    await pools.leftovers.expectUnchanged(nothing);
  });
});

describe('linked snapshots: failures', () => {
  it.each([
    ['chain-depth', 'before'],
    ['clone', 'after'],
    ['snap-remove', 'after'],
    ['finalize', 'after'],
    ['unmark-clone', 'before'],
  ] as Array<[StepName, FaultPoint['when']]>)('a failure at %s (%s) leaves nothing', async (step, when) => {
    const disk = await makeDisk(a());
    const nothing = await pools.leftovers.snapshot();
    let fired = false;
    const c = coordinator(
      withFaults({ source: source(a()), target: target(a(), 'writes-disks') }, (p) => {
        if (fired || p.step !== step || p.when !== when) return;
        fired = true;
        throw Object.assign(new Error(`injected EIO at ${step}`), { code: 'RBD_ERROR', errno: 5, call: 'injected' });
      }),
    );
    try {
      const err = await c.snapshot(disk.uri, { flatten: 'never' }).catch((e: unknown) => e);
      expect(fired).toBe(true);
      expect(err).toMatchObject({ code: 'SNAPSHOT_FAILED', context: expect.objectContaining({ step, method: 'direct' }) });
    } finally {
      await c.close();
    }
    await pools.leftovers.expectUnchanged(nothing);
    await novaDeletes(a(), disk.name);
  });
});

describe('linked snapshots: fallback', () => {
  it('a clone the source user may not make falls back to the copy path: a stand-alone image, nothing of the first attempt left', async () => {
    const disk = await makeDisk(a());
    const before = await exportMd5(a(), `${pools.vms}/${disk.name}`);
    const nothing = await pools.leftovers.snapshot();
    let fired = false;
    const c = coordinator(
      withFaults({ source: source(a()), target: target(a(), 'writes-disks') }, (p) => {
        if (fired || p.step !== 'clone' || p.when !== 'before') return;
        fired = true;
        throw new PermissionError('injected EPERM at clone', { errno: 1, call: 'rbd_clone3' });
      }),
    );
    try {
      const result = await c.snapshot(disk.uri, { flatten: 'never' });
      expect(result).toMatchObject({ method: 'copy', flatten: 'done', fallbackReason: expect.stringContaining('may not write the target pool') });
      expect(result.chain).toBeUndefined();
      expect(await exportMd5(a(), `${pools.images}/${result.imageId}@snap`)).toBe(before);
      await storeDeletes(a(), 'writes-disks', result.location);
    } finally {
      await c.close();
    }
    await pools.leftovers.expectUnchanged(nothing);
    await novaDeletes(a(), disk.name);
  });
});

describe('linked snapshots: bounded chains', () => {
  it('four generations with soft limit 2 and hard limit 3: none deeper than 3, a flatten queued past 2, each content right, and deleting all in a random order leaves nothing', async () => {
    const nothing = await pools.leftovers.snapshot();
    const conf = source(a()).confPath;
    const nova = pools.nova(a());
    const disks: string[] = [];
    const images: Array<{ location: string; id: string; md5: string }> = [];
    let disk = await makeDisk(a());
    disks.push(disk.name);
    const seen: Array<{ depth: number; limit: string; flatten: string }> = [];
    for (let gen = 1; gen <= 4; gen++) {
      const md5 = await exportMd5(a(), `${pools.vms}/${disk.name}`);
      const r = await linkedSnapshot(a(), disk.uri, 'writes-disks', [], { chainLimits: { soft: 2, hard: 3 } });
      seen.push({ depth: r.chain!.depth, limit: r.chain!.limit, flatten: r.flatten });
      images.push({ location: r.location, id: r.imageId, md5 });
      // Boot the next disk from it (nova's clone of the image's `snap`) and write to it.
      const next = uniqueName('linked-gen');
      await rbdAs(conf, nova, ['clone', `${pools.images}/${r.imageId}@snap`, `${pools.vms}/${next}`]);
      await writeAs(a(), `${pools.vms}/${next}`, gen * 1024 * 1024, randomBytes(1024 * 1024));
      disks.push(next);
      disk = { name: next, uri: `rbd://${a().fsid}/${pools.vms}/${next}`, data: Buffer.alloc(0) };
    }
    // L1: 1 deep; L2 reads through D2, L1, D1: 3 (past soft: queued); L3 would be 5 (past hard: flattened); L4 2.
    expect(seen).toEqual([
      { depth: 1, limit: 'none', flatten: 'never' },
      { depth: 3, limit: 'soft', flatten: 'pending' },
      { depth: 5, limit: 'hard', flatten: 'done' },
      { depth: 2, limit: 'none', flatten: 'never' },
    ]);
    const meta = await rbdAs(conf, nova, ['image-meta', 'list', `${pools.images}/${images[1]!.id}`]);
    expect(meta).toContain(FLATTEN_KEY);
    for (const i of images) expect(await exportMd5(a(), `${pools.images}/${i.id}@snap`)).toBe(i.md5);
    // Deleted in a random order, images and disks mixed, each as its owner deletes it.
    // An image a live disk was booted from is in use (the store refuses, as Glance does): it waits its turn.
    const all: Array<{ image: string } | { disk: string }> = [...images.map((i) => ({ image: i.location })), ...disks.map((d) => ({ disk: d }))];
    all.sort(() => Math.random() - 0.5);
    let turns = 0;
    for (let x = all.shift(); x; x = all.shift()) {
      expect(++turns, 'deletes that make no progress').toBeLessThan(40);
      if ('disk' in x) {
        await novaDeletes(a(), x.disk);
        continue;
      }
      const refused = await storeDeletes(a(), 'writes-disks', x.image).then(
        () => null,
        (err: unknown) => err,
      );
      if (refused) {
        expect(refused).toMatchObject({ code: 'IN_USE' });
        all.push(x);
      }
    }
    await pools.leftovers.expectUnchanged(nothing);
  });
});

describe('linked snapshots: the CLI', () => {
  const cli = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
  const snapstore = (args: string[]) =>
    run(process.execPath, [cli, ...args]).then(
      (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
    );
  function configs(trash: boolean): string[] {
    const dir = mkdtempSync(join(tmpdir(), 'linked-cli-'));
    const nova = join(dir, 'nova.conf');
    const glance = join(dir, 'glance-api.conf');
    const conf = source(a(), trash).confPath;
    writeFileSync(nova, `[libvirt]\nimages_rbd_pool = ${pools.vms}\nimages_rbd_ceph_conf = ${conf}\nrbd_user = ${pools.nova(a()).user}\n`);
    writeFileSync(glance, `[glance_store]\ndefault_store = rbd\nrbd_store_pool = ${pools.images}\nrbd_store_user = ${readOnlyStore.get(a().fsid)!.user}\nrbd_store_ceph_conf = ${confs.get(a().fsid)!.trash}\n`);
    return ['--config', nova, '--config', glance];
  }

  it('check lists the preconditions; snapshot --flatten never says never and depth 1; refused with exit 2 without the trash option; delete and nova leave nothing', async () => {
    const nothing = await pools.leftovers.snapshot();
    const disk = await makeDisk(a());
    const spec = `${pools.vms}/${disk.name}`;
    const check = await snapstore(['check', spec, ...configs(true)]);
    expect(check.stdout).toContain('linked (--flatten never): possible');
    expect(check.stdout).toMatch(/ok +LINKED_TRASH_ON_REMOVE/);
    const refused = await snapstore(['snapshot', spec, '--flatten', 'never', ...configs(false)]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('MODE_NOT_POSSIBLE');
    expect(refused.stderr).toContain('rbd_move_parent_to_trash_on_remove = true');
    const badLimits = await snapstore(['snapshot', spec, '--flatten', 'never', '--chain-soft', '0', ...configs(true)]);
    expect(badLimits.code).toBe(2);
    const r = await snapstore(['snapshot', spec, '--flatten', 'never', '--json', ...configs(true)]);
    expect(r.code).toBe(0);
    const result = JSON.parse(r.stdout) as { location: string; flatten: string; chain: unknown };
    expect(result).toMatchObject({ flatten: 'never', chain: { depth: 1, limit: 'none' } });
    await novaDeletes(a(), disk.name);
    expect((await snapstore(['delete', result.location, ...configs(true)])).code).toBe(0);
    // The read-only store user left the disk in the trash: gc (as nova, from nova.conf) removes it.
    const gc = await snapstore(['gc', '--json', ...configs(true)]);
    expect(gc.code).toBe(0);
    expect((JSON.parse(gc.stdout) as { removed: Array<{ kind: string }> }).removed).toEqual([expect.objectContaining({ kind: 'trashed-disk' })]);
    await pools.leftovers.expectUnchanged(nothing);
  });
});

describe('linked snapshots: kill -9, then gc', () => {
  const child = fileURLToPath(new URL('./fixtures/snapshot-child.mjs', import.meta.url));
  const coordinatorModule = fileURLToPath(new URL('../../dist/coordinator/index.js', import.meta.url));

  it.each(['finalize', 'unmark-clone'] as const)('killed as %s starts: gc leaves nothing, the disk unchanged', async (step) => {
    const disk = await makeDisk(a());
    const before = await exportMd5(a(), `${pools.vms}/${disk.name}`);
    const nothing = await pools.leftovers.snapshot();
    const args = { options: { source: source(a()), target: target(a(), 'reads-disks') }, source: disk.uri, snapshot: { flatten: 'never' }, freezeOnStep: step };
    const proc = spawn(process.execPath, [child, coordinatorModule, JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise((r) => proc.on('exit', r));
    await new Promise<void>((resolve, reject) => {
      createInterface({ input: proc.stdout! }).on('line', (line) => {
        const e = JSON.parse(line) as { type: string; step?: string; state?: string };
        if (e.type === 'step' && e.step === step && e.state === 'start') resolve();
        if (e.type === 'finished') reject(new Error('the child finished before the kill point'));
      });
    });
    proc.kill('SIGKILL');
    await exited;
    const gc = coordinator({ source: source(a()), target: target(a(), 'reads-disks') });
    try {
      const report = await gc.gc({ olderThanMs: 0 });
      expect(report.removed.map((l) => l.kind)).toEqual(expect.arrayContaining(['clone', 'run-record']));
    } finally {
      await gc.close();
    }
    await pools.leftovers.expectUnchanged(nothing);
    expect(await exportMd5(a(), `${pools.vms}/${disk.name}`)).toBe(before);
    await novaDeletes(a(), disk.name);
  });
});
