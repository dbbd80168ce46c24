// kill -9 of a process in the middle of a flatten and in the middle of a copy, then gc: nothing of either
// run is left, and the disks are unchanged. And gc never removes what it cannot prove a run made.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROBE_PREFIX, type CoordinatorEvent } from '../../src/coordinator/index.js';
import { compileCoordinator } from '../support/compile-coordinator.js';
import { leftoversOf } from '../support/leftovers.js';
import { ownTestbed } from '../support/own-bed.js';
import { ceph, rbd, rbdJson, uniqueName } from '../support/testbed.js';
import {
  coordinator,
  deleteGlanceImage,
  exportMd5,
  glanceStatus,
  makeDisk,
  rbdTarget,
  removeImage,
  snaps,
  sourceConfig,
} from './helpers.js';

const env = ownTestbed({ glance: true });
const leftovers = leftoversOf(env);
const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
// Inside the repository so that the compiled files resolve ceph-rbd-napi and undici from node_modules.
const buildDir = join(root, 'node_modules', '.cache', `coordinator-kill-${process.pid}`);
const modulePath = join(buildDir, 'coordinator', 'index.js');

beforeAll(async () => {
  await compileCoordinator(`coordinator-kill-${process.pid}`);
}, 120_000);

afterAll(() => rmSync(buildDir, { recursive: true, force: true }));

/** Starts a snapshot in a child process; resolves once `when` matches one of its events. */
function startChild(args: object, when: (e: CoordinatorEvent) => boolean): { child: ChildProcess; reached: Promise<CoordinatorEvent[]> } {
  const child = spawn(process.execPath, [join(here, 'fixtures', 'snapshot-child.mjs'), modulePath, JSON.stringify(args)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const seen: CoordinatorEvent[] = [];
  const reached = new Promise<CoordinatorEvent[]>((resolveReached, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const e = JSON.parse(line) as CoordinatorEvent | { type: 'finished' };
      if (e.type === 'finished') return reject(new Error('the child finished before the kill point'));
      seen.push(e);
      if (when(e)) resolveReached(seen);
    });
    child.on('exit', (code, signal) => reject(new Error(`child exited (${code ?? signal}) before the kill point`)));
  });
  return { child, reached };
}

async function kill9(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.on('exit', r));
  child.kill('SIGKILL');
  await exited;
}

describe('kill -9, then gc', () => {
  it('leaves nothing after a process dies mid-flatten and another mid-copy', async () => {
    const cluster = env.clusters.a;
    const flatDisk = uniqueName('coord-kill-flat');
    const copyDisk = uniqueName('coord-kill-copy');
    const dataDir = mkdtempSync(join(tmpdir(), 'coord-kill-'));
    const [flatSource, copySource] = await Promise.all([
      makeDisk(cluster, flatDisk, 256, 128),
      makeDisk(cluster, copyDisk, 256, 128),
    ]);
    const [flatBefore, copyBefore] = await Promise.all([exportMd5(cluster, `vms/${flatDisk}`), exportMd5(cluster, `vms/${copyDisk}`)]);
    const nothing = await leftovers.snapshot({ dirs: [dataDir] });

    const mid = (phase: string) => (e: CoordinatorEvent) => e.type === 'progress' && e.phase === phase && e.done > 0 && e.done < e.total;
    const flat = startChild({ options: { source: sourceConfig(cluster), target: rbdTarget(cluster) }, source: flatSource, snapshot: {} }, mid('flatten'));
    const copy = startChild(
      { options: { source: sourceConfig(cluster), target: { kind: 'file', dataDir } }, source: copySource, snapshot: {}, freezeOnPhase: 'copy' },
      mid('copy'),
    );
    const [flatSeen, copySeen] = await Promise.all([flat.reached, copy.reached]);
    await Promise.all([kill9(flat.child), kill9(copy.child)]);
    // The clone's id and the partial file's name, as the dead runs announced them.
    const runOf = (seen: CoordinatorEvent[]) => seen.find((e): e is Extract<CoordinatorEvent, { type: 'run' }> => e.type === 'run')!;
    const clone = runOf(flatSeen).imageId;
    const partial = runOf(copySeen).imageId;

    // The runs did leave things behind: snapshots on the disks, the half-flattened clone (locked by the dead
    // process), the partial file.
    expect((await snaps(cluster, `vms/${flatDisk}`)).map((s) => s.name)).toEqual([`snapstore-${runOf(flatSeen).runId}`]);
    expect((await snaps(cluster, `vms/${copyDisk}`)).map((s) => s.name)).toEqual([`snapstore-${runOf(copySeen).runId}`]);
    expect((await rbdJson<string[]>(cluster, ['ls', 'images']))).toContain(clone);
    const lockers = await rbdJson<Array<{ locker: string; address: string }>>(cluster, ['lock', 'ls', `images/${clone}`]);
    expect(lockers).toHaveLength(1);
    expect(readdirSync(dataDir)).toEqual(expect.arrayContaining([expect.stringContaining(partial)]));

    const events: CoordinatorEvent[] = [];
    const gcFlat = coordinator({ source: sourceConfig(cluster), target: rbdTarget(cluster) }, events);
    const gcCopy = coordinator({ source: sourceConfig(cluster), target: { kind: 'file', dataDir } }, events);
    try {
      const dry = await gcFlat.gc({ olderThanMs: 0, dryRun: true });
      expect(dry.removed).toEqual([]);
      expect(dry.found.map((l) => l.kind)).toEqual(expect.arrayContaining(['clone', 'source-snapshot', 'run-record']));
      // Both dead runs are found by either coordinator (the records are on the disks); each removes what its
      // configuration reaches: the clone through the RBD target, the partial file through the file target.
      const flatReport = await gcFlat.gc({ olderThanMs: 0 });
      const copyReport = await gcCopy.gc({ olderThanMs: 0 });
      const removed = [...flatReport.removed, ...copyReport.removed];
      const kindsOn = (disk: string) => [...new Set(removed.filter((l) => l.location.includes(disk)).map((l) => l.kind))].sort();
      expect(kindsOn(flatDisk)).toEqual(['run-record', 'source-snapshot']);
      expect(kindsOn(copyDisk)).toEqual(['run-record', 'source-snapshot']);
      expect(removed.filter((l) => l.kind === 'clone').map((l) => l.location)).toEqual([expect.stringContaining(clone)]);
      expect(removed.filter((l) => l.kind === 'target').map((l) => l.location)).toEqual([expect.stringContaining(partial)]);
    } finally {
      await gcFlat.close();
      await gcCopy.close();
    }
    // The clone's lock was broken, which blocklists its dead holder (so its watch ends without a timeout).
    expect(await ceph(cluster, ['osd', 'blocklist', 'ls'])).toContain(lockers[0]!.address);
    await leftovers.expectUnchanged(nothing);
    expect(await exportMd5(cluster, `vms/${flatDisk}`)).toBe(flatBefore);
    expect(await exportMd5(cluster, `vms/${copyDisk}`)).toBe(copyBefore);
  }, 180_000);
});

describe('gc', () => {
  it('never removes what a run record names unless the object proves it is that run’s', async () => {
    const cluster = env.clusters.a;
    const disk = uniqueName('coord-forged');
    await makeDisk(cluster, disk, 16, 0);
    const nothing = await leftovers.snapshot();
    // A finished image in the image pool, and a Glance image, that snapstore did not make.
    const victim = uniqueName('coord-victim');
    await rbd(cluster, ['create', `images/${victim}`, '--size', '4M']);
    await rbd(cluster, ['snap', 'create', `images/${victim}@snap`]);
    await rbd(cluster, ['snap', 'protect', `images/${victim}@snap`]);
    const created = await fetch(`${env.glance.url}/v2/images`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: victim, disk_format: 'raw', container_format: 'bare' }),
    });
    const glanceVictim = ((await created.json()) as { id: string }).id;
    // A record as a dead run would have left it, naming both.
    const runId = randomUUID();
    const record = {
      v: 1,
      runId,
      startedAt: new Date(Date.now() - 3_600_000).toISOString(),
      owner: { host: 'elsewhere', pid: 1, pidStart: null, bootId: null },
      method: 'copy',
      source: `rbd://${cluster.fsid}/vms/${disk}`,
      sourceSnap: `snapstore-${runId}`,
      target: `rbd://${cluster.fsid}/images/${victim}`,
      glance: { id: glanceVictim, created: true },
    };
    await rbd(cluster, ['image-meta', 'set', `vms/${disk}`, `snapstore.run.${runId}`, JSON.stringify(record)], 'nova');
    const planted = await leftovers.snapshot();
    const c = coordinator({ source: sourceConfig(cluster), target: rbdTarget(cluster), glance: { endpoint: env.glance.url } });
    try {
      // A record as versions before the run journal wrote it: only the image scan finds it.
      await c.gc({ olderThanMs: 60_000, scanImages: true });
    } finally {
      await c.close();
    }
    expect((await snaps(cluster, `images/${victim}`)).map((s) => s.name)).toEqual(['snap']);
    expect(await glanceStatus(env.glance.url, glanceVictim)).toBe('queued');
    // The forged record is gone (it proved nothing); the image and the Glance image it named are untouched.
    await leftovers.expectUnchanged(nothing, [
      { rbd: { fsid: cluster.fsid, pool: 'images', image: victim }, snapshots: ['user:snap'], meta: [] },
      { glance: { url: env.glance.url, id: glanceVictim, status: 'queued' } },
    ]);
    expect(planted.listing).not.toEqual(nothing.listing);
    await deleteGlanceImage(env.glance.url, glanceVictim);
    await removeImage(cluster, `images/${victim}`);
    await leftovers.expectUnchanged(nothing);
  });

  it('removes a caps-probe image older than olderThanMs and keeps a younger one', async () => {
    const cluster = env.clusters.a;
    const nothing = await leftovers.snapshot();
    // Probe names carry a uuid v7, whose first 48 bits are the time it was made.
    const probe = (ms: number) => {
      const t = ms.toString(16).padStart(12, '0');
      return `${PROBE_PREFIX}${t.slice(0, 8)}-${t.slice(8)}-7abc-8def-${randomUUID().slice(-12)}`;
    };
    const old = probe(Date.now() - 3_600_000);
    const young = probe(Date.now());
    for (const name of [old, young]) await rbd(cluster, ['create', `images/${name}`, '--size', '1M'], 'nova');
    const c = coordinator({ source: sourceConfig(cluster), target: rbdTarget(cluster) });
    try {
      const report = await c.gc({ olderThanMs: 600_000 });
      expect(report.removed.map((l) => [l.kind, l.location])).toEqual([['probe-image', expect.stringContaining(old)]]);
    } finally {
      await c.close();
    }
    await leftovers.expectUnchanged(nothing, [{ rbd: { fsid: cluster.fsid, pool: 'images', image: young }, snapshots: [], meta: [] }]);
    await removeImage(cluster, `images/${young}`);
  });
});
