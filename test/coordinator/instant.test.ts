// Instant snapshots on real clusters: usable in well under a second whatever the disk size, flattened later
// by a Flattener (also after one was killed mid-flatten), deletion in either order safe, and refused with a
// typed error on a cluster that only has clone format 1.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Cluster } from 'ceph-rbd-napi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RbdStore } from '../../src/drivers/rbd.js';
import { FLATTEN_KEY, Flattener, type CoordinatorEvent, type FlattenerEvent } from '../../src/coordinator/index.js';
import { leftoversOf, producedBy } from '../support/leftovers.js';
import { ownTestbed } from '../support/own-bed.js';
import { rbd, uniqueName, type ClusterInfo } from '../support/testbed.js';
import { coordinator, imageInfo, makeDisk, rbdTarget, removeImage, sourceConfig } from './helpers.js';

const env = ownTestbed();
const leftovers = leftoversOf(env);
let a: ClusterInfo;
beforeAll(() => {
  a = env.clusters.a;
});
const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
// Inside the repository so that the compiled files resolve ceph-rbd-napi and undici from node_modules.
const buildDir = join(root, 'node_modules', '.cache', `coordinator-instant-${process.pid}`);
const modulePath = join(buildDir, 'coordinator', 'index.js');

afterAll(() => rmSync(buildDir, { recursive: true, force: true }));

// Until it is flattened an instant snapshot reads through to the disk, so the store's user must be able to
// read `vms`: the test bed's client.glance may not (see the test at the end), nova may.
const storeAsNova = () => rbdTarget(a, 'nova');

/** A flattener for this test's images only: other test files queue flattens in the same pool. */
function flattener(cluster: ClusterInfo, images: string[], events: FlattenerEvent[] = []): Flattener {
  return new Flattener({ source: sourceConfig(cluster), target: { pool: 'images' }, images, logger: (e) => events.push(e) });
}

/** Snapshots of the disk, trash namespace included, as `rbd snap ls --all` lists them. */
async function diskSnaps(cluster: ClusterInfo, disk: string): Promise<Array<{ name: string; namespace?: { type: string } }>> {
  return JSON.parse(await rbd(cluster, ['snap', 'ls', '--all', `vms/${disk}`, '--format', 'json'])) as Array<{ name: string }>;
}

const BLOCK = 4 * 1024 * 1024;
const ZEROS = Buffer.alloc(BLOCK);

/**
 * md5 of an image's (or image@snap's) data read through the addon as admin: every 4 MiB block that holds
 * anything but zeros, with its index. Equal for equal content whatever the size, layering or extent
 * boundaries, and it reads only allocated blocks (`rbd export` of 16 GiB would stream 16 GiB of zeros).
 */
async function contentMd5(cluster: ClusterInfo, spec: string): Promise<string> {
  const [pool, rest] = spec.split('/') as [string, string];
  const [name, snap] = rest.split('@') as [string, string | undefined];
  const admin = await Cluster.connect({ confPath: cluster.conf, user: 'admin' });
  try {
    const io = await admin.openIoctx(pool);
    const image = await io.openImage(name, { readOnly: true, ...(snap ? { snapshot: snap } : {}) });
    try {
      const blocks = new Set<number>();
      for (const e of await image.diffIterate()) {
        if (!e.exists) continue;
        for (let b = Math.floor(e.offset / BLOCK); b * BLOCK < e.offset + e.length; b++) blocks.add(b);
      }
      const hash = createHash('md5');
      for (const b of [...blocks].sort((x, y) => x - y)) {
        const data = await image.read(b * BLOCK, BLOCK);
        if (data.equals(ZEROS.subarray(0, data.length))) continue;
        hash.update(`${b}:`).update(createHash('md5').update(data).digest('hex'));
      }
      return hash.digest('hex');
    } finally {
      await image.close();
      await io.close();
    }
  } finally {
    await admin.close();
  }
}

/** Writes to a disk as nova would (the guest writing after the snapshot). */
async function writeDisk(cluster: ClusterInfo, disk: string, offset: number, data: Buffer): Promise<void> {
  const nova = await Cluster.connect({ confPath: cluster.conf, user: 'nova' });
  try {
    const io = await nova.openIoctx('vms');
    const image = await io.openImage(disk);
    try {
      await image.write(offset, data);
      await image.flush();
    } finally {
      await image.close();
      await io.close();
    }
  } finally {
    await nova.close();
  }
}

async function flattenRequest(cluster: ClusterInfo, id: string): Promise<string | null> {
  const out = await rbd(cluster, ['image-meta', 'get', `images/${id}`, FLATTEN_KEY]).catch(() => null);
  return out === null ? null : out.trim();
}

describe('instant snapshots (flatten: background)', () => {
  it('are refused, with the caps fix, when the image store\'s user cannot read the disks\' pool', async () => {
    const disk = uniqueName('instant-caps');
    const source = await makeDisk(a, disk, 64, 4);
    const nothing = await leftovers.snapshot();
    const c = coordinator({ source: sourceConfig(a), target: rbdTarget(a) });
    try {
      const plan = await c.check(source);
      expect(plan.method).toBe('direct');
      expect(plan.instant).toEqual({
        possible: false,
        reason: expect.stringContaining('client.glance'),
        fix: "ceph auth caps client.glance mon 'profile rbd' osd 'profile rbd pool=images, profile rbd-read-only pool=vms'",
      });
      await expect(c.snapshot(source, { flatten: 'background' })).rejects.toMatchObject({ code: 'MODE_NOT_POSSIBLE' });
    } finally {
      await c.close();
    }
    await leftovers.expectUnchanged(nothing);
  });

  it('are usable at once for 1 GiB and 16 GiB disks alike; the source can change; a flattener finishes them', async () => {
    const small = uniqueName('instant-1g');
    const big = uniqueName('instant-16g');
    const [smallSrc, bigSrc] = await Promise.all([makeDisk(a, small, 1024, 64), makeDisk(a, big, 16 * 1024, 64)]);
    const before = await contentMd5(a, `vms/${small}`);
    const nothing = await leftovers.snapshot();
    const runEvents: CoordinatorEvent[] = [];
    const c = coordinator({ source: sourceConfig(a), target: storeAsNova() }, runEvents);
    const ids: string[] = [];
    const runIds = () => runEvents.flatMap((e) => (e.type === 'run' ? [e.runId] : []));
    try {
      // Connecting and learning the clone format happen once per coordinator, not per snapshot.
      const plan = await c.check(smallSrc);
      expect(plan.instant).toMatchObject({ possible: true });
      expect(plan.instant.reason).toContain('clone format 2');

      // How fast this is, and that it does not grow with the disk's size, is bench/snapshot.ts's to measure;
      // here: it returns before any flatten, with the clone queued for a flattener, for both sizes.
      for (const src of [smallSrc, bigSrc]) {
        const result = await c.snapshot(src, { flatten: 'background' });
        expect(result).toMatchObject({ method: 'direct', flatten: 'pending', fallbackReason: null });
        ids.push(result.imageId);
      }
      expect(runEvents.filter((e) => e.type === 'progress' && e.phase === 'flatten')).toEqual([]);
      expect(runEvents.filter((e) => e.type === 'step' && e.step === 'flatten')).toEqual([]);
      await leftovers.expectUnchanged(nothing, [
        ...producedBy(runEvents),
        // The source snapshots wait in the disks' snapshot trash until the flatten.
        ...[small, big].map((disk, i) => ({ rbd: { fsid: a.fsid, pool: 'vms', image: disk }, snapshots: [`trash:snapstore-${runIds()[i]}`], meta: [] })),
      ]);
      const [smallId, bigId] = ids as [string, string];

      // Usable now: `snap` is there and protected, the clone still hangs from the trashed source snapshot.
      const info = await imageInfo(a, `images/${smallId}`);
      expect(info.parent).toBeDefined();
      // No exclusive-lock (the flattener's advisory lock would conflict with it), deep-flatten for `snap`.
      const features = (info as unknown as { features: string[] }).features;
      expect(features).toEqual(expect.arrayContaining(['layering', 'deep-flatten']));
      expect(features).not.toContain('exclusive-lock');
      expect(JSON.parse(await rbd(a, ['snap', 'ls', `images/${smallId}`, '--format', 'json']))).toEqual([
        expect.objectContaining({ name: 'snap', protected: 'true' }),
      ]);
      expect((await diskSnaps(a, small)).map((s) => s.namespace?.type)).toEqual(['trash']);
      expect(JSON.parse((await flattenRequest(a, smallId))!)).toMatchObject({ source: smallSrc, sourceSnap: expect.stringMatching(/^snapstore-/) });
      expect(await contentMd5(a, `images/${smallId}@snap`)).toBe(before);

      // Writing to the disk afterwards does not change the snapshot.
      await writeDisk(a, small, 0, Buffer.alloc(BLOCK, 'x'));
      expect(await contentMd5(a, `vms/${small}`)).not.toBe(before);
      expect(await contentMd5(a, `images/${smallId}@snap`)).toBe(before);

      // gc leaves queued clones (and the snapshots they hang from) alone.
      const gc = await c.gc({ olderThanMs: 0 });
      expect(gc.found).toEqual([]);

      // The disk cannot go while a clone depends on it: snapstore says so, and librbd refuses anyway.
      await expect(c.prepareSourceRemoval(smallSrc)).rejects.toMatchObject({ code: 'IN_USE', context: { clones: [smallId] } });
      await expect(rbd(a, ['rm', `vms/${small}`], 'nova')).rejects.toThrow(/snapshots/);

      const events: FlattenerEvent[] = [];
      const f = flattener(a, ids, events);
      try {
        const report = await f.runOnce();
        expect(report.flattened).toEqual(expect.arrayContaining(ids));
        expect(report.failed).toEqual([]);
      } finally {
        await f.close();
      }
      for (const [id, disk] of [[smallId, small], [bigId, big]] as const) {
        expect((await imageInfo(a, `images/${id}`)).parent).toBeUndefined();
        expect(await flattenRequest(a, id)).toBeNull();
        expect(await diskSnaps(a, disk)).toEqual([]);
      }
      expect(await contentMd5(a, `images/${smallId}@snap`)).toBe(before);
      expect(await c.prepareSourceRemoval(smallSrc)).toMatchObject({ flattened: [], removedTrashedSnapshots: 0 });
    } finally {
      await c.close();
      await Promise.all(ids.map((id) => removeImage(a, `images/${id}`)));
    }
    await leftovers.expectUnchanged(nothing);
  }, 120_000);

  it('a killed flattener leaves work that the next one finishes', async () => {
    await promisify(execFile)(
      'npx',
      ['tsc', '--outDir', buildDir, '--rootDir', 'src', '--module', 'NodeNext', '--moduleResolution', 'NodeNext',
        '--target', 'ES2022', '--skipLibCheck', '--strict', '--types', 'node', 'src/coordinator/index.ts'],
      { cwd: root },
    );
    const disk = uniqueName('instant-kill');
    const source = await makeDisk(a, disk, 512, 256);
    const before = await contentMd5(a, `vms/${disk}`);
    const nothing = await leftovers.snapshot();
    const c = coordinator({ source: sourceConfig(a), target: storeAsNova() });
    let id = '';
    try {
      id = (await c.snapshot(source, { flatten: 'background' })).imageId;

      const child = spawn(process.execPath, [join(here, 'fixtures', 'flattener-child.mjs'), modulePath, JSON.stringify({ source: sourceConfig(a), target: { pool: 'images' }, images: [id] })], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      await new Promise<void>((resolveMid, reject) => {
        createInterface({ input: child.stdout! }).on('line', (line) => {
          const e = JSON.parse(line) as FlattenerEvent | { type: 'finished' };
          if (e.type === 'finished') reject(new Error('the flattener finished before the kill point'));
          if (e.type === 'progress' && e.image === id && e.done > 0 && e.done < e.total) resolveMid();
        });
        child.on('exit', (code, signal) => reject(new Error(`flattener exited (${code ?? signal}) before the kill point`)));
      });
      await kill9(child);
      // Half done: still a clone, still queued, still locked by the dead flattener.
      expect((await imageInfo(a, `images/${id}`)).parent).toBeDefined();
      expect(await flattenRequest(a, id)).not.toBeNull();
      expect(await rbd(a, ['lock', 'ls', `images/${id}`])).toContain('snapstore-flattener');

      const events: FlattenerEvent[] = [];
      const f = flattener(a, [id], events);
      try {
        const report = await f.runOnce();
        expect(report.flattened).toContain(id);
      } finally {
        await f.close();
      }
      expect(events).toContainEqual(expect.objectContaining({ type: 'lock-broken', image: id, why: expect.stringContaining('dead') }));
      expect((await imageInfo(a, `images/${id}`)).parent).toBeUndefined();
      expect(await diskSnaps(a, disk)).toEqual([]);
      expect(await rbd(a, ['lock', 'ls', `images/${id}`])).toBe('');
      expect(await contentMd5(a, `images/${id}@snap`)).toBe(before);
    } finally {
      await c.close();
      if (id) await removeImage(a, `images/${id}`);
    }
    await leftovers.expectUnchanged(nothing);
  }, 120_000);

  it('deleting the image before its flatten works, and takes the trashed source snapshot with it', async () => {
    const disk = uniqueName('instant-del');
    const source = await makeDisk(a, disk, 256, 16);
    const nothing = await leftovers.snapshot();
    const c = coordinator({ source: sourceConfig(a), target: storeAsNova() });
    // nova's user: deleting a clone that is not flattened yet reads its parent in `vms`.
    const store = await RbdStore.connect({ confPath: a.conf, user: 'nova', pool: 'images', chunkSizeMiB: 8, thinProvisioning: true, connectTimeoutMs: 10_000 });
    let id = '';
    try {
      const result = await c.snapshot(source, { flatten: 'background' });
      id = result.imageId;
      expect((await diskSnaps(a, disk)).map((s) => s.namespace?.type)).toEqual(['trash']);
      await store.delete(result.location);
      expect(await diskSnaps(a, disk)).toEqual([]);
      expect(await c.prepareSourceRemoval(source)).toMatchObject({ flattened: [], removedTrashedSnapshots: 0 });
    } finally {
      await store.close();
      await c.close();
      if (id) await removeImage(a, `images/${id}`);
    }
    await leftovers.expectUnchanged(nothing);
  });

  it('a store user that may only read the disks\' pool can delete the image; the trashed snapshot it leaves is removed later', async () => {
    const disk = uniqueName('instant-ro');
    const source = await makeDisk(a, disk, 64, 4);
    const nothing = await leftovers.snapshot();
    // Glance with the caps `check` asks for: write on images, read-only on vms (a user of this test's own).
    const user = uniqueName('instant-glance');
    const keyring = join(tmpdir(), `${user}.keyring`);
    await promisify(execFile)('ceph', ['-c', a.conf, 'auth', 'get-or-create', `client.${user}`, 'mon', 'profile rbd', 'osd', 'profile rbd pool=images, profile rbd-read-only pool=vms', '-o', keyring]);
    const c = coordinator({ source: sourceConfig(a), target: { ...rbdTarget(a, user), keyring } });
    let id = '';
    try {
      expect((await c.check(source)).instant.possible).toBe(true);
      const result = await c.snapshot(source, { flatten: 'background' });
      id = result.imageId;
      const store = await RbdStore.connect({ confPath: a.conf, user, keyring, pool: 'images', chunkSizeMiB: 8, thinProvisioning: true, connectTimeoutMs: 10_000 });
      try {
        await store.delete(result.location);
      } finally {
        await store.close();
      }
      // librbd could not drop the source snapshot as this user: it stays in the trash, used by nothing.
      expect((await diskSnaps(a, disk)).map((s) => s.namespace?.type)).toEqual(['trash']);
      expect(await c.prepareSourceRemoval(source)).toMatchObject({ flattened: [], removedTrashedSnapshots: 1 });
      expect(await diskSnaps(a, disk)).toEqual([]);
    } finally {
      await c.close();
      if (id) await removeImage(a, `images/${id}`);
      await promisify(execFile)('ceph', ['-c', a.conf, 'auth', 'del', `client.${user}`]);
      rmSync(keyring, { force: true });
    }
    await leftovers.expectUnchanged(nothing);
  });

  it('prepareSourceRemoval with flattenFirst flattens the dependent images, after which the disk can go', async () => {
    const disk = uniqueName('instant-rm');
    const source = await makeDisk(a, disk, 256, 16);
    const before = await contentMd5(a, `vms/${disk}`);
    const nothing = await leftovers.snapshot();
    const c = coordinator({ source: sourceConfig(a), target: storeAsNova() });
    let id = '';
    try {
      id = (await c.snapshot(source, { flatten: 'background' })).imageId;
      const report = await c.prepareSourceRemoval(source, { flattenFirst: true });
      expect(report.flattened).toEqual([id]);
      expect(await diskSnaps(a, disk)).toEqual([]);
      await rbd(a, ['rm', `vms/${disk}`], 'nova');
      expect(await contentMd5(a, `images/${id}@snap`)).toBe(before);
    } finally {
      await c.close();
      if (id) await removeImage(a, `images/${id}`);
    }
    // The disk is gone too (removed above), as the test meant.
    const expected = structuredClone(nothing);
    delete expected.listing.rbd[a.fsid]!.vms!.images[disk];
    await leftovers.expectUnchanged(expected);
  });

  it('on a cluster with clone format 1 only, check says why instant is not possible and background fails with MODE_NOT_POSSIBLE', async () => {
    const b = env.clusters.b;
    const disk = uniqueName('instant-v1');
    const source = await makeDisk(b, disk, 64, 4);
    const nothing = await leftovers.snapshot();
    const c = coordinator({ source: sourceConfig(b), target: rbdTarget(b) });
    try {
      const plan = await c.check(source);
      expect(plan.method).toBe('direct');
      expect(plan.instant).toMatchObject({ possible: false, reason: expect.stringContaining('clone format 1'), fix: expect.stringContaining('mimic') });
      await expect(c.snapshot(source, { flatten: 'background' })).rejects.toMatchObject({
        code: 'MODE_NOT_POSSIBLE',
        message: expect.stringContaining('clone format 1'),
      });
    } finally {
      await c.close();
    }
    await leftovers.expectUnchanged(nothing);
  });
});

async function kill9(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.on('exit', r));
  child.kill('SIGKILL');
  await exited;
}
