// Benchmark (not a test): gc and the flattener must cost what the pending work costs, not what the pool
// holds. One pool with 10 instant-snapshot clones queued for their flatten and 10 images marked pending,
// first among 50 images, then among 5,000: one gc scan (dry run) and one flattener poll (finding the work)
// timed at each size, and their ratio 5,000 / 50 (about 1 is the goal). For reference, the full scan the
// old versions ran every time (gc --scan-images, the flattener's first pass with scanImages) at 5,000.
//
//   npm run bench -- build/bench/pending-scan.js      (or npm run bench:scan)
//   BENCH_RUNS=5 ...   timings per figure (default 3, the median is printed)
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCluster, stopCluster } from '../scripts/testbed.mjs';
import { CephCluster, type Ioctx } from '../src/ceph/index.js';
import { Flattener, SnapshotCoordinator } from '../src/coordinator/index.js';
import { queueFlattenRequest } from '../src/coordinator/flatten-queue.js';
import { RbdStore } from '../src/drivers/rbd/index.js';
import { median, printTable, saveJson, timed } from './lib.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const PENDING = 10;
const SMALL = 50;
const LARGE = 5000;
/** Image creations in flight at once, on the one connection. */
const CREATES_IN_FLIGHT = 32;

async function createFillers(io: Ioctx, from: number, to: number): Promise<void> {
  let next = from;
  const worker = async () => {
    for (let i = next++; i < to; i = next++) await io.createImage(`filler-${String(i).padStart(5, '0')}`, 4 * 1024 * 1024, { order: 22 });
  };
  await Promise.all(Array.from({ length: CREATES_IN_FLIGHT }, worker));
}

/** 10 clones of a disk snapshot queued for the flattener, and 10 images marked pending: 20 images. */
async function createPendingWork(session: CephCluster, store: RbdStore): Promise<void> {
  const vms = await session.pool('vms');
  const images = await session.pool('images');
  await vms.createImage('bench-disk', 64 * 1024 * 1024);
  const disk = await vms.openImage('bench-disk');
  await disk.snapCreate('base');
  await disk.snapProtect('base');
  await disk.close();
  for (let i = 0; i < PENDING; i++) {
    const name = `queued-${i}`;
    await vms.clone('bench-disk', 'base', images, name, { features: ['layering', 'deep-flatten'] });
    const clone = await images.openImage(name);
    const request = { v: 1 as const, requestedAt: new Date().toISOString(), runId: `bench-${i}`, source: `rbd://${session.fsid}/vms/bench-disk`, sourceSnap: null };
    await queueFlattenRequest(clone, request);
    await clone.close();
    await images.createImage(`marked-${i}`, 4 * 1024 * 1024, { order: 22 });
    await store.markPending(`marked-${i}`, `bench ${i}`);
  }
}

async function measure(c: SnapshotCoordinator, f: Flattener, scanImages: boolean): Promise<{ gc: number; poll: number }> {
  const gc: number[] = [];
  const poll: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const [g, report] = await timed(() => c.gc({ dryRun: true, scanImages }));
    if (report.found.length !== 0) throw new Error(`gc found ${report.found.length} leftovers in a pool with none`);
    gc.push(g);
    const [p, pending] = await timed(() => f.pending());
    if (pending.length !== PENDING) throw new Error(`the flattener found ${pending.length} queued clones, not ${PENDING}`);
    poll.push(p);
  }
  return { gc: median(gc), poll: median(poll) };
}

async function main(): Promise<void> {
  const own = await mkdtemp(join(tmpdir(), 'snapstore-bench-scan-'));
  const cluster = await startCluster(join(own, 'cluster'), { cloneV2: true });
  try {
    const session = await CephCluster.connect({ confPath: cluster.conf, user: 'admin', timeoutMs: 10_000 });
    const store = new RbdStore({ confPath: cluster.conf, user: 'admin', pool: 'images', cluster: session });
    const source = { confPath: cluster.conf, user: 'admin', pool: 'vms', connectTimeoutMs: 10_000 };
    const c = new SnapshotCoordinator({ source, target: { kind: 'rbd', confPath: cluster.conf, user: 'admin', pool: 'images', chunkSizeMiB: 8, thinProvisioning: true, connectTimeoutMs: 10_000 } });
    const f = new Flattener({ source, target: { pool: 'images' } });
    const fullScan = new Flattener({ source, target: { pool: 'images' }, scanImages: true });
    try {
      const images = await session.pool('images');
      await createPendingWork(session, store);
      await createFillers(images, 0, SMALL - 2 * PENDING);
      await measure(c, f, false); // warm-up: connections, the mgr's first answers
      const small = await measure(c, f, false);
      const [createS] = await timed(() => createFillers(images, SMALL - 2 * PENDING, LARGE - 2 * PENDING));
      const large = await measure(c, f, false);
      const [fullGc] = await timed(() => c.gc({ dryRun: true, scanImages: true }));
      const [fullPoll] = await timed(() => fullScan.pending());
      const rows = [
        { measure: 'gc scan (dry run)', [`${SMALL} images, s`]: small.gc, [`${LARGE} images, s`]: large.gc, ratio: large.gc / small.gc, [`full scan at ${LARGE}, s`]: fullGc },
        { measure: 'flattener poll', [`${SMALL} images, s`]: small.poll, [`${LARGE} images, s`]: large.poll, ratio: large.poll / small.poll, [`full scan at ${LARGE}, s`]: fullPoll },
      ];
      printTable(`gc and flattener with ${PENDING} queued flattens and ${PENDING} pending images (median of ${RUNS})`, rows);
      process.stdout.write(`\n(${LARGE - SMALL} images created in ${createS.toFixed(1)} s, ${CREATES_IN_FLIGHT} in flight on one connection)\n`);
      saveJson('pending-scan', { runs: RUNS, pending: PENDING, small: { images: SMALL, ...small }, large: { images: LARGE, ...large }, fullScan: { gc: fullGc, poll: fullPoll } });
    } finally {
      await Promise.all([c.close(), f.close(), fullScan.close(), store.close()]);
      await session.close();
    }
  } finally {
    await stopCluster(join(own, 'cluster')).catch(() => {});
  }
}

await main();
