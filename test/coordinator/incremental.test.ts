// Incremental snapshots across clusters (issue 13) on a cluster pair of this file's own: the first
// snapshot is a full copy that keeps a common point on the disk; the second is made from the first image
// inside the target cluster and reads only what changed (new data, an overwrite and a discarded range);
// each image stands alone; a broken, stale or forged pairing gives a full copy saying why; a failure at
// any step of the incremental path leaves nothing (the earlier pairing intact); prepareSourceRemoval
// removes the common points. Both clone formats on the target side: a→b (b: format 1), b→a (a: format 2).
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CoordinatorEvent, SnapshotCoordinator, SnapshotResult } from '../../src/coordinator/index.js';
import { INCREMENTAL_STEPS, withFaults, type StepName } from '../../src/coordinator/faults.js';
import { RbdStore } from '../../src/drivers/rbd/index.js';
import { Flattener } from '../../src/coordinator/flattener.js';
import { compileCoordinator } from '../support/compile-coordinator.js';
import { leftoversOf, type Expected, type Snapshot } from '../support/leftovers.js';
import { ownTestbed } from '../support/own-bed.js';
import { type ClusterInfo, rbd, uniqueName } from '../support/testbed.js';
import { coordinator, exportMd5, imageInfo, makeDisk, onDisk, rbdTarget, removeImage, snaps, sourceConfig } from './helpers.js';

const env = ownTestbed();
const leftovers = leftoversOf(env);
const MiB = 1024 * 1024;
const closing: SnapshotCoordinator[] = [];
afterAll(async () => {
  await Promise.all(closing.map((c) => c.close()));
});

function incCoordinator(from: ClusterInfo, to: ClusterInfo, events: CoordinatorEvent[] = [], fault?: (step: StepName, when: string) => void): SnapshotCoordinator {
  const opts = { source: sourceConfig(from), target: rbdTarget(to) };
  const c = fault ? coordinator(withFaults({ ...opts, logger: (e: CoordinatorEvent) => events.push(e) }, (p) => fault(p.step, p.when))) : coordinator(opts, events);
  closing.push(c);
  return c;
}


/** What a finished incremental run leaves: its image (with its record) and the disk with its common point. */
function leaves(result: SnapshotResult, target: ClusterInfo, source: ClusterInfo, disk: string, before: Snapshot): Expected[] {
  const cp = (result.commonPoint ?? '').split('/').pop() ?? '';
  const was = before.listing.rbd[source.fsid]?.vms?.images[disk];
  return [
    { rbd: { fsid: target.fsid, pool: 'images', image: result.imageId }, snapshots: ['user:snap'], meta: ['snapstore.base'] },
    {
      rbd: { fsid: source.fsid, pool: 'vms', image: disk },
      snapshots: [...(was?.snapshots ?? []).filter((s) => !s.startsWith('user:snapstore-cp-')), `user:${cp}`],
      meta: [...(was?.meta ?? []).filter((m) => !m.startsWith('snapstore.common.')), `snapstore.common.${cp}`],
    },
  ];
}

function commonPoints(list: Array<{ name: string }>): string[] {
  return list.map((s) => s.name).filter((n) => n.startsWith('snapstore-cp-'));
}

describe.each([
  { dir: 'a→b (target clone format 1)', from: 'a', to: 'b' },
  { dir: 'b→a (target clone format 2)', from: 'b', to: 'a' },
] as const)('incremental snapshots $dir', ({ from, to }) => {
  const src = () => env.clusters[from];
  const dst = () => env.clusters[to];

  it('sends only what changed; content exact; each image stands alone', async () => {
    const disk = uniqueName('inc');
    const source = await makeDisk(src(), disk, 64, 16);
    // librbd reports an object created after the common point whole: the objects the changes touch exist before.
    await onDisk(src(), disk, async (image) => {
      await image.write(0, Buffer.alloc(4 * MiB, 0x01));
      await image.write(40 * MiB, Buffer.alloc(4 * MiB, 0x02));
    });
    const c = incCoordinator(src(), dst());
    const first = await c.snapshot(source, { incremental: true });
    expect(first).toMatchObject({ method: 'copy', incremental: null });
    expect(first.fallbackReason).toContain('cluster');
    expect(first.fallbackReason).not.toContain('full copy');
    expect(first.commonPoint).toMatch(new RegExp(`^${source}/snapstore-cp-`));
    const firstMd5 = await exportMd5(src(), `vms/${disk}`);
    expect(await exportMd5(dst(), `images/${first.imageId}@snap`)).toBe(firstMd5);

    // New data, an overwrite of written data, and a discarded range (half of it data the first image has).
    await onDisk(src(), disk, async (image) => {
      await image.write(40 * MiB + 4096, Buffer.alloc(MiB, 0xab));
      await image.write(0, Buffer.alloc(512 * 1024, 0xcd));
      await image.discard(8 * MiB, 8 * MiB);
    });
    const plan = await c.check(source);
    expect(plan.incremental).toMatchObject({ possible: true, from: first.imageId });
    // librbd's diff is exact to its own granularity (a few KiB around the 1.5 MiB written), never whole objects.
    const changed = MiB + 512 * 1024;
    const expected = plan.incremental?.bytesExpected ?? 0;
    expect(expected).toBeGreaterThanOrEqual(changed);
    expect(expected).toBeLessThanOrEqual(changed + 64 * 1024);

    const before = await leftovers.snapshot();
    const events: CoordinatorEvent[] = [];
    const c2 = incCoordinator(src(), dst(), events);
    const second = await c2.snapshot(source, { incremental: true });
    expect(second.incremental).toEqual({ from: first.imageId, bytesSent: expected });
    expect(second.fallbackReason).not.toContain('full copy');
    const secondMd5 = await exportMd5(src(), `vms/${disk}`);
    expect(secondMd5).not.toBe(firstMd5);
    expect(await exportMd5(dst(), `images/${second.imageId}@snap`)).toBe(secondMd5);
    expect((await imageInfo(dst(), `images/${second.imageId}`)).parent).toBeUndefined();
    // The first common point went once the second image was registered.
    expect(commonPoints(await snaps(src(), `vms/${disk}`))).toEqual([second.commonPoint?.split('/').pop()]);
    expect(events).toContainEqual(expect.objectContaining({ type: 'common-point', state: 'removed', snap: first.commonPoint?.split('/').pop() }));
    const firstMeta = before.listing.rbd[dst().fsid]?.images?.images[first.imageId];
    expect(firstMeta).toEqual({ snapshots: ['user:snap'], meta: ['snapstore.base'] });
    await leftovers.expectUnchanged(before, leaves(second, dst(), src(), disk, before));

    // The store's own delete of the first image (it refuses while clones depend on its snap), then the other way round.
    const store = await RbdStore.connect({ confPath: dst().conf, user: 'glance', pool: 'images', chunkSizeMiB: 8, thinProvisioning: true, connectTimeoutMs: 10_000 });
    try {
      await store.delete(first.location);
      expect(await exportMd5(dst(), `images/${second.imageId}@snap`)).toBe(secondMd5);
      const third = await c2.snapshot(source, { incremental: true });
      expect(third.incremental).toEqual({ from: second.imageId, bytesSent: 0 });
      await store.delete(second.location);
      expect(await exportMd5(dst(), `images/${third.imageId}@snap`)).toBe(secondMd5);
      await store.delete(third.location);
    } finally {
      await store.close();
    }
    const removal = await c2.prepareSourceRemoval(source);
    expect(removal.removedCommonPoints).toHaveLength(1);
    expect(await snaps(src(), `vms/${disk}`)).toEqual([]);
  });
  it('a disk with an object map: the changed objects come from it, their exact extents from librbd; only those are sent', async () => {
    const disk = uniqueName('inc-fast-diff');
    await rbd(src(), ['create', `vms/${disk}`, '--size', '64M', '--image-feature', 'layering,exclusive-lock,object-map,fast-diff'], 'nova');
    const source = `rbd://${src().fsid}/vms/${disk}`;
    await onDisk(src(), disk, async (image) => {
      for (const at of [0, 8, 20, 40]) await image.write(at * MiB, Buffer.alloc(4 * MiB, at + 1));
    });
    const c = incCoordinator(src(), dst());
    const first = await c.snapshot(source, { incremental: true });
    // Within written objects (librbd reports an object created since the common point whole): an overwrite
    // in object 2, a small write in object 5, and a discard of object 10.
    await onDisk(src(), disk, async (image) => {
      await image.write(9 * MiB + 512 * 1024, Buffer.alloc(MiB, 0xaa));
      await image.write(20 * MiB + 4096, Buffer.alloc(8192, 0xbb));
      await image.discard(40 * MiB, 4 * MiB);
    });
    const second = await c.snapshot(source, { incremental: true });
    expect(second.incremental).toEqual({ from: first.imageId, bytesSent: MiB + 8192 });
    expect(await exportMd5(dst(), `images/${second.imageId}@snap`)).toBe(await exportMd5(src(), `vms/${disk}`));
    await removeImage(dst(), `images/${second.imageId}`);
    await removeImage(dst(), `images/${first.imageId}`);
    await c.prepareSourceRemoval(source);
    await rbd(src(), ['rm', '--no-progress', `vms/${disk}`], 'nova');
  });

  it('with flatten: background the new image is usable at once; its base refuses deletion until a flattener has flattened it', async () => {
    const disk = uniqueName('inc-bg');
    const source = await makeDisk(src(), disk, 32, 8);
    await onDisk(src(), disk, (image) => image.write(16 * MiB, Buffer.alloc(4 * MiB, 0x01)));
    const c = incCoordinator(src(), dst());
    // The first is a full copy: nothing to flatten, whatever was asked.
    const first = await c.snapshot(source, { incremental: true, flatten: 'background' });
    expect(first).toMatchObject({ method: 'copy', incremental: null, flatten: 'done' });
    await onDisk(src(), disk, async (image) => {
      await image.write(16 * MiB + 4096, Buffer.alloc(MiB, 0x3c));
      await image.discard(0, 4 * MiB);
    });
    const md5 = await exportMd5(src(), `vms/${disk}`);
    const before = await leftovers.snapshot();
    const events: CoordinatorEvent[] = [];
    const second = await incCoordinator(src(), dst(), events).snapshot(source, { incremental: true, flatten: 'background' });
    expect(second.incremental?.from).toBe(first.imageId);
    // No mgr in this bed: the request stays for snapstore's flattener, and the result says why.
    expect(second).toMatchObject({ flatten: 'pending', flattenerReason: expect.any(String) });
    expect(events).toContainEqual(expect.objectContaining({ type: 'flatten-queued', imageId: second.imageId, via: 'flattener' }));
    expect(events.filter((e) => e.type === 'step' && e.state === 'done').map((e) => e.type === 'step' && e.step)).toContain('queue-flatten');
    const info = await imageInfo(dst(), `images/${second.imageId}`);
    expect(info.parent).toMatchObject({ pool: 'images', image: first.imageId, snapshot: 'snap' });
    expect(info.features).toEqual(expect.arrayContaining(['layering', 'deep-flatten']));
    expect(info.features).not.toContain('exclusive-lock');
    expect(await exportMd5(dst(), `images/${second.imageId}@snap`)).toBe(md5);
    await leftovers.expectUnchanged(before, [
      ...leaves(second, dst(), src(), disk, before).map((e) => ('rbd' in e && e.rbd.image === second.imageId ? { ...e, meta: ['snapstore.base', 'snapstore.flatten'] } : e)),
    ]);

    const store = await RbdStore.connect({ confPath: dst().conf, user: 'glance', pool: 'images', chunkSizeMiB: 8, thinProvisioning: true, connectTimeoutMs: 10_000 });
    try {
      // While the new image reads through the first one's snap, the first cannot go (Glance's delete: 409).
      await expect(store.delete(first.location)).rejects.toMatchObject({ code: 'IN_USE' });
      expect(await exportMd5(dst(), `images/${first.imageId}@snap`)).not.toBe(md5);
      const f = new Flattener({ source: rbdTarget(dst(), 'glance'), target: { pool: 'images' }, images: [second.imageId] });
      try {
        expect(await f.runOnce()).toEqual({ flattened: [second.imageId], skipped: [], failed: [] });
      } finally {
        await f.close();
      }
      expect((await imageInfo(dst(), `images/${second.imageId}`)).parent).toBeUndefined();
      await store.delete(first.location);
      expect(await exportMd5(dst(), `images/${second.imageId}@snap`)).toBe(md5);
      // Flattened, it is a base like any other.
      const third = await c.snapshot(source, { incremental: true, flatten: 'background' });
      expect(third.incremental).toEqual({ from: second.imageId, bytesSent: 0 });
      await store.delete(third.location);
      await store.delete(second.location);
    } finally {
      await store.close();
    }
    await c.prepareSourceRemoval(source);
  });
});

describe('broken pairings give a full copy with the reason', () => {
  /** A disk with one incremental snapshot into b; returns its source, result and coordinator. */
  async function paired() {
    const disk = uniqueName('inc-broken');
    const source = await makeDisk(env.clusters.a, disk, 32, 8);
    const c = incCoordinator(env.clusters.a, env.clusters.b);
    const first = await c.snapshot(source, { incremental: true });
    const cp = first.commonPoint?.split('/').pop() ?? '';
    return { disk, source, c, first, cp };
  }

  async function expectFull(c: SnapshotCoordinator, source: string, disk: string, why: RegExp): Promise<SnapshotResult> {
    const plan = await c.check(source);
    expect(plan.incremental?.possible).toBe(false);
    expect(plan.incremental?.reason).toMatch(why);
    const r = await c.snapshot(source, { incremental: true });
    expect(r.incremental).toBeNull();
    expect(r.fallbackReason).toMatch(why);
    expect(await exportMd5(env.clusters.b, `images/${r.imageId}@snap`)).toBe(await exportMd5(env.clusters.a, `vms/${disk}`));
    // The new pairing holds: the next one is incremental again.
    expect((await c.check(source)).incremental).toMatchObject({ possible: true, from: r.imageId });
    return r;
  }

  it('the common point deleted by hand', async () => {
    const { disk, source, c, cp } = await paired();
    await removeImageSnap(env.clusters.a, disk, cp);
    await expectFull(c, source, disk, /common point .* is gone/);
  });

  it('the common point replaced by another snapshot of the same name', async () => {
    const { disk, source, c, cp } = await paired();
    await removeImageSnap(env.clusters.a, disk, cp);
    await onDisk(env.clusters.a, disk, (image) => image.snapCreate(cp));
    await expectFull(c, source, disk, /was replaced/);
  });

  it('the previous image deleted', async () => {
    const { disk, source, c, first } = await paired();
    await removeImage(env.clusters.b, `images/${first.imageId}`);
    await expectFull(c, source, disk, /previous image .* is gone/);
  });

  it('a forged pairing naming another image of the store', async () => {
    const { disk, source, c, cp } = await paired();
    const other = await paired();
    // The disk's pairing now names the other disk's image, whose record names the other disk's snapshot.
    await onDisk(env.clusters.a, disk, async (image) => {
      const key = `snapstore.common.${cp}`;
      const p = JSON.parse((await image.metadataGet(key)) ?? '{}') as Record<string, unknown>;
      await image.metadataSet(key, JSON.stringify({ ...p, imageId: other.first.imageId }));
    });
    await expectFull(c, source, disk, /stale or forged/);
  });
});

async function removeImageSnap(cluster: ClusterInfo, disk: string, snap: string): Promise<void> {
  await onDisk(cluster, disk, (image) => image.snapRemove(snap));
}

describe('a failure at any step of the incremental path leaves nothing, and the pairing holds', () => {
  // Background: the steps from the one that leaves the image unflattened on, with its flatten queued.
  const cases = [
    ...INCREMENTAL_STEPS.filter((s) => !['glance-create', 'glance-add-location', 'unrecord', 'prune', 'copy', 'queue-flatten'].includes(s)).map((step) => ({ step, flatten: 'sync' as const })),
    ...(['finish', 'queue-flatten', 'pair', 'unmark-target'] as const).map((step) => ({ step, flatten: 'background' as const })),
  ];
  it.each(cases)('at $step (flatten: $flatten)', async ({ step, flatten }) => {
    const disk = uniqueName('inc-fault');
    const source = await makeDisk(env.clusters.a, disk, 32, 8);
    await onDisk(env.clusters.a, disk, (image) => image.write(0, Buffer.alloc(4 * MiB, 0x01)));
    const first = await incCoordinator(env.clusters.a, env.clusters.b).snapshot(source, { incremental: true });
    await onDisk(env.clusters.a, disk, (image) => image.write(3 * MiB, Buffer.alloc(MiB, 0x5e)));
    const before = await leftovers.snapshot();
    const events: CoordinatorEvent[] = [];
    let armed = true;
    const c = incCoordinator(env.clusters.a, env.clusters.b, events, (s, when) => {
      if (armed && s === step && when === 'before') throw Object.assign(new Error(`injected EIO at ${step}`), { code: 'RBD_ERROR', errno: 5 });
    });
    await expect(c.snapshot(source, { incremental: true, flatten })).rejects.toMatchObject({ code: 'SNAPSHOT_FAILED', context: expect.objectContaining({ step }) });
    await leftovers.expectUnchanged(before);
    armed = false;
    const next = await c.snapshot(source, { incremental: true, mode: 'copy' });
    expect(next.incremental).toMatchObject({ from: first.imageId });
    expect(next.incremental?.bytesSent).toBeGreaterThanOrEqual(MiB);
    expect(next.incremental?.bytesSent).toBeLessThanOrEqual(MiB + 64 * 1024);
  });
});

describe('kill -9 in the middle of an incremental snapshot, then gc', () => {
  const here = dirname(fileURLToPath(import.meta.url));
  let buildDir = '';
  beforeAll(async () => {
    buildDir = await compileCoordinator(`incremental-kill-${process.pid}`);
  }, 180_000);
  afterAll(() => {
    if (buildDir) rmSync(buildDir, { recursive: true, force: true });
  });

  it('gc removes the unfinished image, the snapshot and the record; the earlier pairing still holds', async () => {
    const [a, b] = [env.clusters.a, env.clusters.b];
    const disk = uniqueName('inc-kill');
    const source = await makeDisk(a, disk, 32, 0);
    await onDisk(a, disk, (image) => image.write(0, Buffer.alloc(8 * MiB, 0x01)));
    const first = await incCoordinator(a, b).snapshot(source, { incremental: true });
    await onDisk(a, disk, (image) => image.write(0, Buffer.alloc(8 * MiB, 0x02)));
    const before = await leftovers.snapshot();

    const options = { source: sourceConfig(a), target: rbdTarget(b) };
    const args = { options, source, snapshot: { incremental: true }, freezeOnPhase: 'copy' };
    const child = spawn(process.execPath, [join(here, 'fixtures', 'snapshot-child.mjs'), join(buildDir, 'coordinator', 'index.js'), JSON.stringify(args)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const seen: CoordinatorEvent[] = [];
    await new Promise<void>((resolveReached, reject) => {
      child.on('exit', (code, signal) => reject(new Error(`child exited (${code ?? signal}) before the kill point`)));
      createInterface({ input: child.stdout as NonNullable<typeof child.stdout> }).on('line', (line) => {
        const e = JSON.parse(line) as CoordinatorEvent;
        seen.push(e);
        if (e.type === 'progress' && e.phase === 'copy' && e.done > 0 && e.done < e.total) resolveReached();
      });
    });
    const exited = new Promise((r) => child.on('exit', r));
    child.kill('SIGKILL');
    await exited;
    const run = seen.find((e): e is Extract<CoordinatorEvent, { type: 'run' }> => e.type === 'run');
    // The dead run left its common point-to-be and its unfinished image (made from the first one).
    expect(commonPoints(await snaps(a, `vms/${disk}`))).toContain(`snapstore-cp-${run?.runId}`);
    expect(seen).toContainEqual(expect.objectContaining({ type: 'step', step: 'derive', state: 'done' }));

    const report = await incCoordinator(a, b).gc({ olderThanMs: 0 });
    // The record and its journal entry are both `run-record`s.
    expect([...new Set(report.removed.map((l) => l.kind))].sort()).toEqual(['run-record', 'source-snapshot', 'target']);
    expect(report.removed.filter((l) => l.kind === 'target').map((l) => l.location)).toEqual([expect.stringContaining(run?.imageId ?? '?')]);
    await leftovers.expectUnchanged(before);
    const next = await incCoordinator(a, b).snapshot(source, { incremental: true });
    expect(next.incremental).toEqual({ from: first.imageId, bytesSent: 8 * MiB });
    expect(await exportMd5(b, `images/${next.imageId}@snap`)).toBe(await exportMd5(a, `vms/${disk}`));
  });
});

describe('a failure in the full-copy branch (the first snapshot) leaves nothing', () => {
  it.each(['copy', 'record-base', 'pair', 'unmark-target'] as const)('at %s', async (step) => {
    const disk = uniqueName('inc-fault-full');
    const source = await makeDisk(env.clusters.a, disk, 32, 8);
    const before = await leftovers.snapshot();
    const c = incCoordinator(env.clusters.a, env.clusters.b, [], (s, when) => {
      if (s === step && when === 'before') throw Object.assign(new Error(`injected EIO at ${step}`), { code: 'RBD_ERROR', errno: 5 });
    });
    await expect(c.snapshot(source, { incremental: true })).rejects.toMatchObject({ code: 'SNAPSHOT_FAILED', context: expect.objectContaining({ step }) });
    await leftovers.expectUnchanged(before);
    expect((await c.check(source)).incremental).toMatchObject({ possible: false });
  });
});
