// Snapshot benchmark, side by side in one run (issue 7):
//  1. direct snapshot (SnapshotCoordinator) vs the same steps by the rbd CLI vs the nova-style full copy
//     (rbd export to a local file + Glance PUT /file), for a 4 GiB image with 1 GiB written;
//  2. the copy path across two clusters vs `rbd export - | rbd import -`, on a 25%-allocated image: without
//     checksums (like the pipe; what `checksums: auto` does without Glance or with Glance ≥ 2.17, which
//     hashes locations itself) and with md5+sha512 computed inline (what auto does for an older Glance);
//  3. peak RSS and worst event-loop lag of the snapstore runs.
// The clusters keep Ceph's default image features (exclusive-lock, object-map, fast-diff), as deployments do.
// Targets: direct ≤ 0.10x full copy and ≤ 1.0x rbd CLI; copy ≥ 1.5x the rbd pipe; RSS ≤ 200 MB; lag ≤ 50 ms.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { startCluster, startGlance, stopCluster, stopGlance, type ClusterInfo, type GlanceInfo } from '../scripts/testbed.mjs';
import { SnapshotCoordinator } from '../src/coordinator/index.js';
import { median, peakRssMiB, printTable, rbd, rbdPipe, saveJson, timed, withLag, writtenBytes } from './lib.js';

const run = promisify(execFile);
const GiB = 1024 ** 3;
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const DISK = Number(process.env.BENCH_DISK_GIB ?? 4);
const WRITTEN_MIB = Number(process.env.BENCH_WRITTEN_MIB ?? 1024);

async function glanceDelete(glance: GlanceInfo, id: string): Promise<void> {
  await fetch(`${glance.url}/v2/images/${id}`, { method: 'DELETE' });
}

async function glanceCreate(glance: GlanceInfo, name: string): Promise<string> {
  const res = await fetch(`${glance.url}/v2/images`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name, disk_format: 'raw', container_format: 'bare' }),
  });
  return ((await res.json()) as { id: string }).id;
}

async function glanceAddLocation(glance: GlanceInfo, id: string, url: string): Promise<void> {
  const res = await fetch(`${glance.url}/v2/images/${id}`, {
    method: 'PATCH',
    headers: { 'content-type': 'application/openstack-images-v2.1-json-patch' },
    body: JSON.stringify([{ op: 'add', path: '/locations/-', value: { url, metadata: {} } }]),
  });
  if (res.status !== 200) throw new Error(`Glance PATCH answered ${res.status}`);
}

/** The direct path's steps, one rbd command each, as an operator script would run them. */
async function rbdCliSnapshot(c: ClusterInfo, glance: GlanceInfo, disk: string, i: number): Promise<string> {
  const id = await glanceCreate(glance, `cli-${i}`);
  const snap = `${disk}@cli-${i}`;
  await rbd(c, ['snap', 'create', snap], 'nova');
  await rbd(c, ['clone', snap, `images/${id}`], 'nova');
  await rbd(c, ['flatten', '--no-progress', `images/${id}`], 'nova');
  await rbd(c, ['snap', 'rm', snap], 'nova');
  await rbd(c, ['snap', 'create', `images/${id}@snap`], 'nova');
  await rbd(c, ['snap', 'protect', `images/${id}@snap`], 'nova');
  await glanceAddLocation(glance, id, `rbd://${c.fsid}/images/${id}/snap`);
  return id;
}

async function fullCopy(c: ClusterInfo, glance: GlanceInfo, disk: string, i: number, dir: string): Promise<string> {
  const snap = `${disk}@full-${i}`;
  const file = join(dir, `full-${i}.raw`);
  await rbd(c, ['snap', 'create', snap], 'nova');
  await rbd(c, ['export', '--no-progress', snap, file], 'nova');
  const id = await glanceCreate(glance, `full-${i}`);
  // curl, as a separate process like nova's upload, so the bench's own RSS measures snapstore alone.
  await run('curl', ['-fsS', '-X', 'PUT', '-H', 'content-type: application/octet-stream', '-T', file, `${glance.url}/v2/images/${id}/file`]);
  rmSync(file);
  await rbd(c, ['snap', 'rm', snap], 'nova');
  return id;
}

const dir = mkdtempSync(join(tmpdir(), 'snapstore-bench-'));
process.env.SNAPSTORE_MEMSTORE_BYTES = String(10 * GiB);
let a: ClusterInfo | undefined;
let b: ClusterInfo | undefined;
let glance: GlanceInfo | undefined;
try {
  [a, b] = await Promise.all([
    startCluster(join(dir, 'a'), { cloneV2: true, stockFeatures: true }),
    startCluster(join(dir, 'b'), { stockFeatures: true }),
  ]);
  glance = await startGlance(join(dir, 'glance'), a.dir);
  const disk = 'vms/bench-disk';
  await rbd(a, ['create', disk, '--size', `${DISK}G`], 'nova');
  await rbd(a, ['bench', '--io-type', 'write', '--io-size', '4M', '--io-total', `${WRITTEN_MIB}M`, '--io-pattern', 'rand', disk], 'nova');
  const allocated = await writtenBytes(a, disk);

  const direct = new SnapshotCoordinator({
    source: { confPath: a.conf, user: 'nova', pool: 'vms', connectTimeoutMs: 10_000 },
    target: { kind: 'rbd', confPath: a.conf, user: 'glance', pool: 'images', chunkSizeMiB: 8, thinProvisioning: true, connectTimeoutMs: 10_000 },
    glance: { endpoint: glance.url },
  });
  const times = { direct: [] as number[], cli: [] as number[], full: [] as number[] };
  let worstLag = 0;
  for (let i = 0; i < RUNS; i++) {
    const [lag, [t, result]] = await withLag(() => timed(() => direct.snapshot(`rbd://${a!.fsid}/${disk}`, { name: `direct-${i}` })));
    if (result.method !== 'direct') throw new Error(`expected the direct path, got ${result.method}: ${result.fallbackReason}`);
    worstLag = Math.max(worstLag, lag);
    times.direct.push(t);
    await glanceDelete(glance, result.glance!.id);
    const [tc, cliId] = await timed(() => rbdCliSnapshot(a!, glance!, disk, i));
    times.cli.push(tc);
    await glanceDelete(glance, cliId);
    const [tf, fullId] = await timed(() => fullCopy(a!, glance!, disk, i, dir));
    times.full.push(tf);
    await glanceDelete(glance, fullId);
  }
  await direct.close();

  // Copy path: the same disk (25% allocated) from cluster a into cluster b's images pool.
  const copier = new SnapshotCoordinator({
    source: { confPath: a.conf, user: 'nova', pool: 'vms', connectTimeoutMs: 10_000 },
    target: { kind: 'rbd', confPath: b.conf, user: 'glance', pool: 'images', chunkSizeMiB: 8, thinProvisioning: true, connectTimeoutMs: 10_000 },
  });
  const copy = { snapstore: [] as number[], hashed: [] as number[], pipe: [] as number[], snapstoreUsed: 0, pipeUsed: 0 };
  await rbd(a, ['snap', 'create', `${disk}@pipe`], 'nova');
  const copyOnce = async (id: string, checksums: 'off' | 'inline'): Promise<number> => {
    const [lag, [t, result]] = await withLag(() => timed(() => copier.snapshot(`rbd://${a!.fsid}/${disk}`, { imageId: id, checksums })));
    if (result.method !== 'copy') throw new Error(`expected the copy path, got ${result.method}`);
    if ((result.checksums !== null) !== (checksums === 'inline')) throw new Error(`checksums ${checksums} gave ${JSON.stringify(result.checksums)}`);
    worstLag = Math.max(worstLag, lag);
    copy.snapstoreUsed = await writtenBytes(b!, `images/${id}`);
    await rbd(b!, ['snap', 'unprotect', `images/${id}@snap`]);
    await rbd(b!, ['snap', 'purge', `images/${id}`]);
    await rbd(b!, ['rm', '--no-progress', `images/${id}`]);
    return t;
  };
  for (let i = 0; i < RUNS; i++) {
    copy.snapstore.push(await copyOnce(`copy-${i}`, 'off'));
    copy.hashed.push(await copyOnce(`hashed-${i}`, 'inline'));
    const [tp] = await timed(() => rbdPipe(a!, `${disk}@pipe`, b!, `images/pipe-${i}`));
    copy.pipe.push(tp);
    copy.pipeUsed = await writtenBytes(b, `images/pipe-${i}`);
    await rbd(b, ['rm', '--no-progress', `images/pipe-${i}`]);
  }
  await rbd(a, ['snap', 'rm', `${disk}@pipe`], 'nova');
  await copier.close();

  const m = { direct: median(times.direct), cli: median(times.cli), full: median(times.full) };
  const mc = { snapstore: median(copy.snapstore), hashed: median(copy.hashed), pipe: median(copy.pipe) };
  const logical = DISK * GiB;
  const rss = peakRssMiB();
  const rows = [
    { measure: 'direct snapshot, median s', snapstore: m.direct, 'rbd CLI': m.cli, 'full copy': m.full, ratio: `${(m.direct / m.full).toFixed(3)}x full, ${(m.direct / m.cli).toFixed(2)}x CLI`, target: '≤ 0.10x full, ≤ 1.0x CLI' },
    { measure: 'copy across clusters, median s', snapstore: mc.snapstore, 'rbd CLI': mc.pipe, 'full copy': '-', ratio: `${(mc.pipe / mc.snapstore).toFixed(2)}x the pipe's throughput`, target: '≥ 1.5x' },
    { measure: 'same copy + md5 & sha512 (Glance < 2.17), median s', snapstore: mc.hashed, 'rbd CLI': mc.pipe, 'full copy': '-', ratio: `${(mc.pipe / mc.hashed).toFixed(2)}x the pipe's throughput`, target: '- (CPU-bound: hashes every byte)' },
    { measure: 'copy, MiB written to target (rbd diff)', snapstore: copy.snapstoreUsed / 2 ** 20, 'rbd CLI': copy.pipeUsed / 2 ** 20, 'full copy': '-', ratio: `source holds ${(allocated / 2 ** 20).toFixed(0)} MiB`, target: '≈ source' },
    { measure: 'peak RSS, MiB', snapstore: rss, 'rbd CLI': '-', 'full copy': '-', ratio: '-', target: '≤ 200' },
    { measure: 'worst event-loop lag, ms', snapstore: worstLag, 'rbd CLI': '-', 'full copy': '-', ratio: '-', target: '≤ 50' },
  ];
  printTable(`snapshot of a ${DISK} GiB disk with ${WRITTEN_MIB} MiB written, ${RUNS} runs each`, rows);
  saveJson('snapshot', {
    disk: { sizeBytes: logical, allocatedBytes: allocated }, runs: RUNS, seconds: { direct: times, copy }, medians: { ...m, copy: mc },
    ratios: {
      directVsFull: m.direct / m.full,
      directVsCli: m.direct / m.cli,
      copyThroughputVsPipe: mc.pipe / mc.snapstore,
      hashedCopyThroughputVsPipe: mc.pipe / mc.hashed,
    },
    peakRssMiB: rss, worstLagMs: worstLag,
  });
} finally {
  if (glance) await stopGlance(glance.dir).catch(() => {});
  await Promise.all([a, b].filter(Boolean).map((c) => stopCluster(c!.dir).catch(() => {})));
  rmSync(dir, { recursive: true, force: true });
}
