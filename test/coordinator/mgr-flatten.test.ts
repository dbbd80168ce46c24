// Background flattens through ceph-mgr's rbd_support task queue, on a cluster of its own with a real
// ceph-mgr: an instant snapshot flattened by the mgr with no snapstore process left, the mgr killed by PID
// mid-flatten and started again, the fallback to snapstore's flattener for a user without the mgr cap
// (and `check` saying why), a task that vanished from the queue taken over by the flattener, 20
// snapshots queued at once, and an incremental snapshot's image flattened by the mgr before the changes go in.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Cluster } from 'ceph-rbd-napi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLATTEN_KEY, Flattener, type CoordinatorEvent, type FlattenRequest } from '../../src/coordinator/index.js';
import { startMgrCluster, type MgrCluster } from '../support/mgr-cluster.js';
import { rbd, uniqueName } from '../support/testbed.js';
import { coordinator, exportMd5, makeDisk, onDisk, rbdTarget, removeImage, sourceConfig } from './helpers.js';

let c: MgrCluster;
const root = process.env.SNAPSTORE_TESTBED_ROOT ?? process.env.TMPDIR ?? '/tmp';

beforeAll(async () => {
  c = await startMgrCluster(join(root, `mgr-cluster-${process.pid}`));
  // Until flattened an instant snapshot reads through to the disk: the store's users may read `vms`, as
  // check's fix says. client.glance has the mgr cap Ceph's OpenStack guide gives it; glance-nomgr not.
  const osd = 'profile rbd pool=images, profile rbd-read-only pool=vms';
  await ceph(['auth', 'caps', 'client.glance', 'mon', 'profile rbd', 'osd', osd, 'mgr', 'profile rbd pool=images']);
  await ceph(['auth', 'caps', 'client.glance-nomgr', 'mon', 'profile rbd', 'osd', osd]);
}, 240_000);

afterAll(async () => {
  await c?.stop();
});

async function ceph(args: string[]): Promise<string> {
  const { execFile } = await import('node:child_process');
  const { promisify } = await import('node:util');
  const { stdout } = await promisify(execFile)('ceph', ['-c', c.conf, ...args]);
  return stdout;
}

async function parentOf(id: string): Promise<unknown> {
  const info = JSON.parse(await rbd(c, ['info', `images/${id}`, '--format', 'json'])) as { parent?: unknown };
  return info.parent ?? null;
}

async function waitFlattened(ids: string[], ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const parents = await Promise.all(ids.map(parentOf));
    if (parents.every((p) => p === null)) return;
    if (Date.now() > deadline) throw new Error(`not flattened within ${ms} ms: ${ids.filter((_, i) => parents[i] !== null).join(', ')}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Snapshots of a disk, trash namespace included (`rbd snap ls --all`). */
async function diskSnaps(disk: string): Promise<string[]> {
  return (JSON.parse(await rbd(c, ['snap', 'ls', '--all', `vms/${disk}`, '--format', 'json'])) as Array<{ name: string }>).map((s) => s.name);
}

async function flattenRequest(id: string): Promise<FlattenRequest | null> {
  const out = await rbd(c, ['image-meta', 'get', `images/${id}`, FLATTEN_KEY]).catch(() => null);
  return out === null ? null : (JSON.parse(out) as FlattenRequest);
}

async function mgrTasks(): Promise<Array<{ id: string; in_progress?: boolean; progress?: number }>> {
  return JSON.parse(await ceph(['rbd', 'task', 'list', '--format', 'json'])) as Array<{ id: string; in_progress?: boolean }>;
}

describe('ceph-rbd-napi mgrCommand against a running ceph-mgr', () => {
  it("answers rbd_support's JSON, and says EACCES with Ceph's own text to a user without the mgr cap", async () => {
    const glance = await Cluster.connect({ confPath: c.conf, user: 'glance' });
    const nomgr = await Cluster.connect({ confPath: c.conf, user: 'glance-nomgr' });
    try {
      const list = await glance.mgrCommand({ prefix: 'rbd task list' });
      expect(Array.isArray(JSON.parse(list.output.toString()))).toBe(true);
      await expect(glance.mgrCommand({ prefix: 'rbd task add flatten', image_spec: 'images/no-such-image' })).rejects.toMatchObject({
        code: 'NOT_FOUND',
        message: expect.stringContaining('does not exist'),
      });
      await expect(nomgr.mgrCommand('{"prefix": "rbd task list"}')).rejects.toMatchObject({ code: 'PERMISSION', message: expect.stringContaining('mgr caps') });
    } finally {
      await Promise.all([glance.close(), nomgr.close()]);
    }
  });
});

const cli = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

function snapstore(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { maxBuffer: 1 << 26 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** nova.conf + glance-api.conf for this cluster, the store as `storeUser`. */
function configs(storeUser: string): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'snapstore-mgr-cli-'));
  const nova = join(dir, 'nova.conf');
  const glance = join(dir, 'glance-api.conf');
  writeFileSync(nova, `[libvirt]\nimages_rbd_pool = vms\nimages_rbd_ceph_conf = ${c.conf}\nrbd_user = nova\n`);
  writeFileSync(glance, `[glance_store]\ndefault_store = rbd\nrbd_store_pool = images\nrbd_store_user = ${storeUser}\nrbd_store_ceph_conf = ${c.conf}\n`);
  return ['--config', nova, '--config', glance];
}

describe('snapstore check, snapshot and flattener --status with a mgr', () => {
  it('check says which way a background flatten goes and the cap fix; --status follows the mgr task', async () => {
    const disk = uniqueName('mgr-cli');
    const source = await makeDisk(c, disk, 32, 16);
    const refused = await snapstore(['check', source, ...configs('glance-nomgr')]);
    expect(refused.stdout).toContain("background flatten by snapstore's flattener: ceph-mgr refused client.glance-nomgr");
    expect(refused.stdout).toContain("fix: ceph auth caps client.glance-nomgr mon 'profile rbd' osd 'profile rbd pool=images, profile rbd-read-only pool=vms' mgr 'profile rbd pool=images'");
    const cfg = configs('glance');
    expect((await snapstore(['check', source, ...cfg])).stdout).toContain('background flatten by ceph-mgr (rbd_support task queue)');
    const snap = await snapstore(['snapshot', source, '--flatten', 'background', '--json', ...cfg]);
    expect(snap.code).toBe(0);
    const result = JSON.parse(snap.stdout) as { imageId: string; flatten: string; flattenTask: string };
    expect(result.flatten).toBe('queued');
    const status = await snapstore(['flattener', '--status', '--json', ...cfg]);
    const parsed = JSON.parse(status.stdout) as { images: Array<{ image: string; by: string; taskId: string; state: string }>; mgrError: string | null };
    expect(parsed.mgrError).toBeNull();
    expect(parsed.images).toContainEqual(expect.objectContaining({ image: result.imageId, by: 'mgr', taskId: result.flattenTask }));
    const mine = parsed.images.find((i) => i.image === result.imageId);
    expect(['queued', 'running', 'flattened']).toContain(mine?.state);
    await waitFlattened([result.imageId], 50_000);
    const once = await snapstore(['flattener', result.imageId, '--once', '--json', ...cfg]);
    expect(JSON.parse(once.stdout)).toEqual({ flattened: [result.imageId], skipped: [], failed: [] });
    await removeImage(c, `images/${result.imageId}`);
  });
});

describe('background flattens through ceph-mgr', () => {
  it('an instant snapshot is flattened by the mgr with no snapstore process left: content exact, no snapshot left on the disk', async () => {
    const disk = uniqueName('mgr-one');
    const source = await makeDisk(c, disk, 64, 32);
    const md5 = await exportMd5(c, `vms/${disk}`);
    const events: CoordinatorEvent[] = [];
    const co = coordinator({ source: sourceConfig(c), target: rbdTarget(c, 'glance') }, events);
    let id = '';
    try {
      const plan = await co.check(source);
      expect(plan.instant).toMatchObject({ possible: true, flattenBy: { via: 'mgr' } });
      const result = await co.snapshot(source, { flatten: 'background' });
      id = result.imageId;
      expect(result).toMatchObject({ method: 'direct', flatten: 'queued', flattenTask: expect.any(String) });
      expect(events).toContainEqual(expect.objectContaining({ type: 'flatten-queued', via: 'mgr', taskId: result.flattenTask }));
      expect((await flattenRequest(id))?.mgrTask?.id).toBe(result.flattenTask);
    } finally {
      await co.close();
    }
    // The coordinator is closed: only the mgr works from here.
    await waitFlattened([id], 50_000);
    expect(await exportMd5(c, `images/${id}@snap`)).toBe(md5);
    expect(await diskSnaps(disk)).toEqual([]);
    // gc sees pending work there (the entry stays until a flattener pass), not a leftover.
    const gcEvents: CoordinatorEvent[] = [];
    const gcCo = coordinator({ source: sourceConfig(c), target: rbdTarget(c, 'glance') }, gcEvents);
    try {
      const report = await gcCo.gc({ olderThanMs: 0, dryRun: true });
      expect(report.found.filter((l) => l.location.includes(id))).toEqual([]);
      expect(gcEvents).toContainEqual(
        expect.objectContaining({ type: 'gc', action: 'kept', why: expect.stringContaining(`queued with ceph-mgr (task ${(await flattenRequest(id))?.mgrTask?.id}`) }),
      );
    } finally {
      await gcCo.close();
    }
    // The next flattener pass only clears the finished entry.
    const f = new Flattener({ source: sourceConfig(c), target: { pool: 'images' }, storeUser: rbdTarget(c, 'glance'), images: [id] });
    try {
      expect(await f.runOnce()).toEqual({ flattened: [id], skipped: [], failed: [] });
    } finally {
      await f.close();
    }
    expect(await flattenRequest(id)).toBeNull();
    await removeImage(c, `images/${id}`);
  });

  it('without the mgr cap the snapshot falls back to snapstore\'s flattener, and check and the result say why', async () => {
    const disk = uniqueName('mgr-nocap');
    const source = await makeDisk(c, disk, 32, 16);
    const md5 = await exportMd5(c, `vms/${disk}`);
    const events: CoordinatorEvent[] = [];
    const co = coordinator({ source: sourceConfig(c), target: rbdTarget(c, 'glance-nomgr') }, events);
    let id = '';
    try {
      const plan = await co.check(source);
      expect(plan.instant.flattenBy).toMatchObject({
        via: 'flattener',
        reason: expect.stringContaining('no mgr cap'),
        fix: "ceph auth caps client.glance-nomgr mon 'profile rbd' osd 'profile rbd pool=images, profile rbd-read-only pool=vms' mgr 'profile rbd pool=images'",
      });
      const result = await co.snapshot(source, { flatten: 'background' });
      id = result.imageId;
      expect(result).toMatchObject({ flatten: 'pending', flattenerReason: expect.stringContaining('no mgr cap') });
      expect(result.flattenTask).toBeUndefined();
      expect(events).toContainEqual(expect.objectContaining({ type: 'flatten-queued', via: 'flattener', code: 'MGR_CAPS' }));
    } finally {
      await co.close();
    }
    expect((await mgrTasks()).length).toBe(0);
    expect(await parentOf(id)).not.toBeNull();
    const f = new Flattener({ source: sourceConfig(c), target: { pool: 'images' }, storeUser: rbdTarget(c, 'glance-nomgr'), images: [id] });
    try {
      expect(await f.runOnce()).toEqual({ flattened: [id], skipped: [], failed: [] });
    } finally {
      await f.close();
    }
    expect(await parentOf(id)).toBeNull();
    expect(await exportMd5(c, `images/${id}@snap`)).toBe(md5);
    expect(await diskSnaps(disk)).toEqual([]);
    await removeImage(c, `images/${id}`);
  });

  it('a task that vanished from the mgr\'s queue is flattened by the fallback flattener, never lost', async () => {
    const disk = uniqueName('mgr-lost');
    const source = await makeDisk(c, disk, 32, 16);
    const md5 = await exportMd5(c, `vms/${disk}`);
    // A user without the mgr cap queues nothing with the mgr; the entry then names a task the mgr's queue
    // does not have, as after a task Ceph dropped (its failures that end a task remove it) or a lost queue.
    const co = coordinator({ source: sourceConfig(c), target: rbdTarget(c, 'glance-nomgr') });
    let id = '';
    try {
      id = (await co.snapshot(source, { flatten: 'background' })).imageId;
    } finally {
      await co.close();
    }
    const request = (await flattenRequest(id)) as FlattenRequest;
    const fakeTask = { id: 'vanished-task', queuedAt: new Date().toISOString() };
    await rbd(c, ['image-meta', 'set', `images/${id}`, FLATTEN_KEY, JSON.stringify({ ...request, mgrTask: fakeTask })]);
    const f = new Flattener({ source: sourceConfig(c), target: { pool: 'images' }, storeUser: rbdTarget(c, 'glance'), images: [id] });
    try {
      const status = await f.status();
      expect(status.images).toEqual([expect.objectContaining({ image: id, by: 'mgr', taskId: 'vanished-task', state: 'gone' })]);
      expect(await f.runOnce()).toEqual({ flattened: [id], skipped: [], failed: [] });
    } finally {
      await f.close();
    }
    expect(await exportMd5(c, `images/${id}@snap`)).toBe(md5);
    expect(await diskSnaps(disk)).toEqual([]);
    await removeImage(c, `images/${id}`);
  });

  it('prepareSourceRemoval({ flattenFirst }) queues with the mgr what it does not have and waits for it', async () => {
    const disk = uniqueName('mgr-remove');
    const source = await makeDisk(c, disk, 32, 16);
    const md5 = await exportMd5(c, `vms/${disk}`);
    // Snapshotted by a user the mgr refuses: nothing queued with the mgr yet.
    const first = coordinator({ source: sourceConfig(c), target: rbdTarget(c, 'glance-nomgr') });
    let id = '';
    try {
      id = (await first.snapshot(source, { flatten: 'background' })).imageId;
    } finally {
      await first.close();
    }
    expect((await flattenRequest(id))?.mgrTask).toBeUndefined();
    const co = coordinator({ source: sourceConfig(c), target: rbdTarget(c, 'glance') });
    try {
      await expect(co.prepareSourceRemoval(source)).rejects.toMatchObject({ code: 'IN_USE' });
      const report = await co.prepareSourceRemoval(source, { flattenFirst: true });
      expect(report.flattened).toEqual([id]);
    } finally {
      await co.close();
    }
    expect(await parentOf(id)).toBeNull();
    expect(await flattenRequest(id)).toBeNull();
    expect(await exportMd5(c, `images/${id}@snap`)).toBe(md5);
    expect(await diskSnaps(disk)).toEqual([]);
    await removeImage(c, `images/${id}`);
  });

  it('the mgr killed by PID mid-flatten and started again: the task resumes and completes', async () => {
    const disk = uniqueName('mgr-kill');
    const source = await makeDisk(c, disk, 512, 512);
    const md5 = await exportMd5(c, `vms/${disk}`);
    // One object at a time: the flatten takes long enough to be caught running.
    await ceph(['config', 'set', 'mgr', 'rbd_concurrent_management_ops', '1']);
    const co = coordinator({ source: sourceConfig(c), target: rbdTarget(c, 'glance') });
    let id = '';
    let taskId = '';
    try {
      const result = await co.snapshot(source, { flatten: 'background' });
      id = result.imageId;
      taskId = result.flattenTask ?? '';
      expect(result.flatten).toBe('queued');
    } finally {
      await co.close();
    }
    let running = false;
    for (let i = 0; i < 400 && !running; i++) {
      running = (await mgrTasks()).some((t) => t.id === taskId && t.in_progress === true);
      if (!running) await new Promise((r) => setTimeout(r, 50));
    }
    expect(running).toBe(true);
    await c.killMgr();
    expect(await parentOf(id)).not.toBeNull();
    await c.startMgr();
    try {
      await waitFlattened([id], 170_000);
    } finally {
      await ceph(['config', 'rm', 'mgr', 'rbd_concurrent_management_ops']);
    }
    expect(await exportMd5(c, `images/${id}@snap`)).toBe(md5);
    expect(await diskSnaps(disk)).toEqual([]);
    await removeImage(c, `images/${id}`);
  }, 240_000);

  it('20 instant snapshots queued at once all end flattened', async () => {
    const disks = Array.from({ length: 20 }, () => uniqueName('mgr-many'));
    const sources: string[] = [];
    for (let i = 0; i < disks.length; i += 5) sources.push(...(await Promise.all(disks.slice(i, i + 5).map((d) => makeDisk(c, d, 16, 8)))));
    const co = coordinator({ source: sourceConfig(c), target: rbdTarget(c, 'glance') });
    let ids: string[] = [];
    try {
      const results = await Promise.all(sources.map((s) => co.snapshot(s, { flatten: 'background' })));
      expect(results.map((r) => r.flatten)).toEqual(disks.map(() => 'queued'));
      expect(new Set(results.map((r) => r.flattenTask)).size).toBe(20);
      ids = results.map((r) => r.imageId);
    } finally {
      await co.close();
    }
    await waitFlattened(ids, 170_000);
    for (const d of disks) expect(await diskSnaps(d)).toEqual([]);
    await Promise.all(ids.map((id) => removeImage(c, `images/${id}`)));
  }, 240_000);
});

describe('incremental snapshots: the image made from the previous one is flattened inside the cluster first', () => {
  it('by ceph-mgr, waited for, before the changes go in; without the mgr cap by snapstore, which says why; content exact either way', async () => {
    const MiB = 2 ** 20;
    const disk = uniqueName('mgr-inc');
    const source = await makeDisk(c, disk, 64, 16);
    // The store's images get Ceph's stock features, exclusive-lock included: librbd would hand the mgr's
    // flatten to a snapstore handle holding the lock, so snapstore must not hold it meanwhile.
    const stockConf = `${c.conf}.stock-features`;
    writeFileSync(stockConf, `${readFileSync(c.conf, 'utf8')}\n[client.glance]\nrbd default features = 61\n`);
    const events: CoordinatorEvent[] = [];
    const nomgrEvents: CoordinatorEvent[] = [];
    const co = coordinator({ source: sourceConfig(c), target: { ...rbdTarget(c, 'glance'), confPath: stockConf } }, events);
    const nomgr = coordinator({ source: sourceConfig(c), target: rbdTarget(c, 'glance-nomgr') }, nomgrEvents);
    const ids: string[] = [];
    try {
      const first = await co.snapshot(source, { incremental: true, mode: 'copy' });
      ids.push(first.imageId);
      await onDisk(c, disk, (image) => image.write(4 * MiB + 4096, Buffer.alloc(MiB, 0xab)));
      // check says who will flatten first, asked without queueing anything.
      expect((await co.check(source)).incremental).toMatchObject({ possible: true, flattenFirstBy: { via: 'mgr' } });
      expect((await nomgr.check(source)).incremental).toMatchObject({
        possible: true,
        reason: expect.stringContaining('flattened through snapstore before the changes go in (ceph-mgr refused client.glance-nomgr'),
        flattenFirstBy: { via: 'snapstore', fix: expect.stringContaining("mgr 'profile rbd pool=images'") },
      });
      const second = await co.snapshot(source, { incremental: true, mode: 'copy' });
      ids.push(second.imageId);
      expect(second).toMatchObject({ method: 'copy', flatten: 'done', incremental: { from: first.imageId } });
      const flattened = events.filter((e) => e.type === 'flattened');
      expect(flattened).toEqual([expect.objectContaining({ imageId: second.imageId, via: 'mgr' })]);
      expect(flattened[0]).not.toHaveProperty('why');
      expect(await parentOf(second.imageId)).toBeNull();
      expect(await exportMd5(c, `images/${second.imageId}@snap`)).toBe(await exportMd5(c, `vms/${disk}`));
      // The mgr's task is done and gone: nothing of it is queued.
      expect((await mgrTasks()).filter((t) => JSON.stringify(t).includes(second.imageId))).toEqual([]);

      await onDisk(c, disk, (image) => image.write(8 * MiB, Buffer.alloc(2 * MiB, 0xcd)));
      const third = await nomgr.snapshot(source, { incremental: true, mode: 'copy' });
      ids.push(third.imageId);
      expect(third.incremental).toMatchObject({ from: second.imageId });
      expect(nomgrEvents.filter((e) => e.type === 'flattened')).toEqual([
        expect.objectContaining({ imageId: third.imageId, via: 'snapstore', why: expect.stringContaining('client.glance-nomgr') }),
      ]);
      expect(await parentOf(third.imageId)).toBeNull();
      expect(await exportMd5(c, `images/${third.imageId}@snap`)).toBe(await exportMd5(c, `vms/${disk}`));
      expect(await rbd(c, ['info', `images/${second.imageId}`])).toContain('exclusive-lock');
      await co.prepareSourceRemoval(source);
    } finally {
      await Promise.all([co.close(), nomgr.close()]);
      for (const id of ids.reverse()) await removeImage(c, `images/${id}`);
    }
  }, 120_000);

  it('cancelled while the mgr flattens: its task is cancelled, the new image removed, and the pairing still holds', async () => {
    const MiB = 2 ** 20;
    const disk = uniqueName('mgr-inc-cancel');
    const source = await makeDisk(c, disk, 64, 32);
    const events: CoordinatorEvent[] = [];
    const abort = new AbortController();
    const co = coordinator({
      source: sourceConfig(c),
      target: rbdTarget(c, 'glance'),
      logger: (e) => {
        events.push(e);
        if (e.type === 'step' && e.step === 'flatten-first' && e.state === 'start') abort.abort(new Error('operator cancelled'));
      },
    });
    const plain = coordinator({ source: sourceConfig(c), target: rbdTarget(c, 'glance') });
    const ids: string[] = [];
    try {
      const first = await plain.snapshot(source, { incremental: true, mode: 'copy' });
      ids.push(first.imageId);
      await onDisk(c, disk, (image) => image.write(0, Buffer.alloc(MiB, 0x11)));
      const imagesBefore = (await rbd(c, ['ls', 'images'])).split('\n').filter(Boolean).sort();
      await expect(co.snapshot(source, { incremental: true, mode: 'copy', signal: abort.signal })).rejects.toMatchObject({ code: 'CANCELLED' });
      const run = events.find((e): e is Extract<CoordinatorEvent, { type: 'run' }> => e.type === 'run');
      expect(events).toContainEqual(expect.objectContaining({ type: 'step', step: 'flatten-first', state: 'failed' }));
      expect((await rbd(c, ['ls', 'images'])).split('\n').filter(Boolean).sort()).toEqual(imagesBefore);
      expect((await mgrTasks()).filter((t) => JSON.stringify(t).includes(run?.imageId ?? '?'))).toEqual([]);
      const next = await plain.snapshot(source, { incremental: true, mode: 'copy' });
      ids.push(next.imageId);
      expect(next.incremental).toMatchObject({ from: first.imageId });
      expect(await exportMd5(c, `images/${next.imageId}@snap`)).toBe(await exportMd5(c, `vms/${disk}`));
      await plain.prepareSourceRemoval(source);
    } finally {
      await Promise.all([co.close(), plain.close()]);
      for (const id of ids.reverse()) await removeImage(c, `images/${id}`);
    }
  }, 120_000);
});
