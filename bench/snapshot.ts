// Snapshot benchmark, side by side in one run (issue 7):
//  1. direct snapshot (SnapshotCoordinator) vs the same steps by the rbd CLI vs the nova-style full copy
//     (rbd export to a local file + Glance PUT /file), for a 4 GiB image with 1 GiB written;
//  2. the copy path across two clusters vs `rbd export - | rbd import -`, on a 25%-allocated image: without
//     checksums (like the pipe; what `checksums: auto` does without Glance or with Glance ≥ 2.17, which
//     hashes locations itself) and with md5+sha512 computed inline (what auto does for an older Glance);
//  3. peak RSS and worst event-loop lag of the snapstore runs.
// Each path runs in its own child process (forked from this file), so its peak RSS is its own: glibc keeps
// what a flatten frees, and one process running both paths would report the sum.
// The clusters keep Ceph's default image features (exclusive-lock, object-map, fast-diff), as deployments do.
// Targets: direct ≤ 0.10x full copy and ≤ 1.0x rbd CLI; copy ≥ 1.5x the rbd pipe; RSS ≤ 200 MB; lag ≤ 50 ms.
import { execFile, fork } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startCluster, startGlance, stopCluster, stopGlance, type ClusterInfo, type GlanceInfo } from '../scripts/testbed.mjs';
import { SnapshotCoordinator } from '../src/coordinator/index.js';
import { commandPeakRss, median, osdWrittenBytes, peakRssMiB, printTable, rbd, rbdPipe, repoRoot, saveJson, timed, withLag, writtenBytes } from './lib.js';

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
async function rbdCliSnapshot(c: ClusterInfo, glance: GlanceInfo, disk: string, i: number | string): Promise<string> {
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

interface Bed {
  a: ClusterInfo;
  b: ClusterInfo;
  glance: GlanceInfo;
  disk: string;
  dir: string;
}

interface PathStats {
  /** Peak RSS of the child process that ran the path, MiB. */
  rssMiB: number;
  /** Worst event-loop lag over the timed runs, and in the untimed warm-up run (first connections). */
  lagMs: number;
  warmUpLagMs: number;
  /** lagMs without the time the JS thread waited for a CPU (see LagReport.worstOwnMs). */
  ownLagMs: number;
}

const sourceConfig = (c: ClusterInfo) => ({ confPath: c.conf, user: 'nova', pool: 'vms', connectTimeoutMs: 10_000 });
const targetConfig = (c: ClusterInfo) =>
  ({ kind: 'rbd', confPath: c.conf, user: 'glance', pool: 'images', chunkSizeMiB: 8, thinProvisioning: true, connectTimeoutMs: 10_000 }) as const;

/** The copy path vs the rbd pipe, from cluster a into cluster b; with and without checksums. */
async function copyPhase({ a, b, disk }: Bed) {
  const copier = new SnapshotCoordinator({ source: sourceConfig(a), target: targetConfig(b) });
  const plain: PathStats = { rssMiB: 0, lagMs: 0, warmUpLagMs: 0, ownLagMs: 0 };
  const hashed: PathStats = { rssMiB: 0, lagMs: 0, warmUpLagMs: 0, ownLagMs: 0 };
  const seconds = { snapstore: [] as number[], hashed: [] as number[], pipe: [] as number[] };
  const written = { snapstore: 0, pipe: 0 };
  await rbd(a, ['snap', 'create', `${disk}@pipe`], 'nova');
  const copyOnce = async (id: string, checksums: 'off' | 'inline', warmUp = false): Promise<number> => {
    const stats = checksums === 'off' ? plain : hashed;
    const before = await osdWrittenBytes(b);
    const [lag, [t, result]] = await withLag(() => timed(() => copier.snapshot(`rbd://${a.fsid}/${disk}`, { imageId: id, checksums })));
    if (result.method !== 'copy') throw new Error(`expected the copy path, got ${result.method}`);
    if ((result.checksums !== null) !== (checksums === 'inline')) throw new Error(`checksums ${checksums} gave ${JSON.stringify(result.checksums)}`);
    if (warmUp) stats.warmUpLagMs = Math.max(stats.warmUpLagMs, lag.worstMs);
    else {
      stats.lagMs = Math.max(stats.lagMs, lag.worstMs);
      stats.ownLagMs = Math.max(stats.ownLagMs, lag.worstOwnMs);
    }
    if (checksums === 'off') written.snapstore = (await osdWrittenBytes(b)) - before;
    await rbd(b, ['snap', 'unprotect', `images/${id}@snap`]);
    await rbd(b, ['snap', 'purge', `images/${id}`]);
    await rbd(b, ['rm', '--no-progress', `images/${id}`]);
    return t;
  };
  const pipeOnce = async (id: string): Promise<number> => {
    const before = await osdWrittenBytes(b);
    const [t] = await timed(() => rbdPipe(a, `${disk}@pipe`, b, `images/${id}`));
    written.pipe = (await osdWrittenBytes(b)) - before;
    await rbd(b, ['rm', '--no-progress', `images/${id}`]);
    return t;
  };
  // One untimed run of each first; then alternate which goes first.
  await copyOnce('copy-warm-up', 'off', true);
  await pipeOnce('pipe-warm-up');
  for (let i = 0; i < RUNS; i++) {
    const order = i % 2 === 0 ? (['snapstore', 'pipe'] as const) : (['pipe', 'snapstore'] as const);
    for (const which of order) {
      if (which === 'pipe') seconds.pipe.push(await pipeOnce(`pipe-${i}`));
      else seconds.snapstore.push(await copyOnce(`copy-${i}`, 'off'));
    }
  }
  // Peak RSS without checksums, then (the worker threads and their slab on top) with them.
  plain.rssMiB = peakRssMiB();
  await copyOnce('hashed-warm-up', 'inline', true);
  for (let i = 0; i < RUNS; i++) seconds.hashed.push(await copyOnce(`hashed-${i}`, 'inline'));
  hashed.rssMiB = peakRssMiB();
  await rbd(a, ['snap', 'rm', `${disk}@pipe`], 'nova');
  await copier.close();
  return { seconds, written, plain, hashed };
}

/** The direct path vs the same steps by the rbd CLI vs the nova-style full copy, all on cluster a. */
async function directPhase({ a, glance, disk, dir }: Bed) {
  const direct = new SnapshotCoordinator({ source: sourceConfig(a), target: targetConfig(a), glance: { endpoint: glance.url } });
  const stats: PathStats = { rssMiB: 0, lagMs: 0, warmUpLagMs: 0, ownLagMs: 0 };
  const seconds = { direct: [] as number[], cli: [] as number[], full: [] as number[] };
  const directOnce = async (name: string, warmUp = false): Promise<number> => {
    const [lag, [t, result]] = await withLag(() => timed(() => direct.snapshot(`rbd://${a.fsid}/${disk}`, { name })));
    if (result.method !== 'direct') throw new Error(`expected the direct path, got ${result.method}: ${result.fallbackReason}`);
    if (warmUp) stats.warmUpLagMs = lag.worstMs;
    else {
      stats.lagMs = Math.max(stats.lagMs, lag.worstMs);
      stats.ownLagMs = Math.max(stats.ownLagMs, lag.worstOwnMs);
    }
    await glanceDelete(glance, result.glance!.id);
    return t;
  };
  const cliOnce = async (i: number | string): Promise<number> => {
    const [t, id] = await timed(() => rbdCliSnapshot(a, glance, disk, i));
    await glanceDelete(glance, id);
    return t;
  };
  await directOnce('warm-up', true);
  await cliOnce('warm-up');
  for (let i = 0; i < RUNS; i++) {
    if (i % 2 === 0) {
      seconds.direct.push(await directOnce(`direct-${i}`));
      seconds.cli.push(await cliOnce(i));
    } else {
      seconds.cli.push(await cliOnce(i));
      seconds.direct.push(await directOnce(`direct-${i}`));
    }
    const [tf, fullId] = await timed(() => fullCopy(a, glance, disk, i, dir));
    seconds.full.push(tf);
    await glanceDelete(glance, fullId);
  }
  stats.rssMiB = peakRssMiB();
  await direct.close();
  // What librbd's flatten costs the rbd CLI in memory, for comparison.
  await rbd(a, ['snap', 'create', `${disk}@rss`], 'nova');
  await rbd(a, ['clone', `${disk}@rss`, 'images/rss-probe'], 'nova');
  const cliFlattenRss = (await commandPeakRss('rbd', ['-c', a.conf, '--id', 'nova', 'flatten', '--no-progress', 'images/rss-probe'])).rssMiB;
  await rbd(a, ['rm', '--no-progress', 'images/rss-probe'], 'nova');
  await rbd(a, ['snap', 'rm', `${disk}@rss`], 'nova');
  return { seconds, stats, cliFlattenRss };
}

/**
 * Peak RSS of the `snapstore snapshot` command, one process per snapshot as operators run it, with real
 * nova.conf / glance-api.conf files: the direct path into cluster a (+ Glance), the copy path into cluster b.
 */
async function commandRss({ a, b, glance, disk, dir }: Bed): Promise<{ direct: number; copy: number }> {
  const cli = join(repoRoot, 'dist', 'cli.js');
  const nova = join(dir, 'nova.conf');
  const novaNoGlance = join(dir, 'nova-no-glance.conf');
  const libvirt = `[libvirt]\nimages_type = rbd\nimages_rbd_pool = vms\nimages_rbd_ceph_conf = ${a.conf}\nrbd_user = nova\n`;
  writeFileSync(nova, `${libvirt}[glance]\napi_servers = ${glance.url}\n`);
  writeFileSync(novaNoGlance, libvirt);
  const storeB = join(dir, 'glance-api-b.conf');
  writeFileSync(storeB, `[glance_store]\ndefault_store = rbd\nrbd_store_pool = images\nrbd_store_user = glance\nrbd_store_ceph_conf = ${b.conf}\n`);
  const source = `rbd://${a.fsid}/${disk}`;
  const direct = await commandPeakRss('node', [cli, 'snapshot', source, '--name', 'rss-direct', '--config', nova, '--config', glance.conf, '--json']);
  const d = JSON.parse(direct.stdout) as { method: string; glance: { id: string } };
  if (d.method !== 'direct') throw new Error(`snapstore snapshot took the ${d.method} path`);
  await glanceDelete(glance, d.glance.id);
  const copy = await commandPeakRss('node', [cli, 'snapshot', source, '--image-id', 'rss-copy', '--config', novaNoGlance, '--config', storeB, '--json']);
  if ((JSON.parse(copy.stdout) as { method: string }).method !== 'copy') throw new Error('snapstore snapshot did not copy');
  await rbd(b, ['snap', 'unprotect', 'images/rss-copy@snap']);
  await rbd(b, ['snap', 'purge', 'images/rss-copy']);
  await rbd(b, ['rm', '--no-progress', 'images/rss-copy']);
  return { direct: direct.rssMiB, copy: copy.rssMiB };
}

type Phases = { copy: Awaited<ReturnType<typeof copyPhase>>; direct: Awaited<ReturnType<typeof directPhase>> };

/** Runs one phase in a child process of its own (this file, BENCH_PHASE set) and returns what it measured. */
function runPhase<K extends keyof Phases>(name: K, bed: Bed): Promise<Phases[K]> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), [], { env: { ...process.env, BENCH_PHASE: name, BENCH_BED: JSON.stringify(bed) } });
    let result: Phases[K] | undefined;
    child.on('message', (m) => (result = m as Phases[K]));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 && result ? resolve(result) : reject(new Error(`bench phase ${name} exited ${code}`))));
  });
}

if (process.env.BENCH_PHASE) {
  const bed = JSON.parse(process.env.BENCH_BED!) as Bed;
  const result = process.env.BENCH_PHASE === 'copy' ? await copyPhase(bed) : await directPhase(bed);
  process.send!(result, () => process.disconnect());
} else {
  await main();
}

async function main(): Promise<void> {
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
    const bed: Bed = { a, b, glance, disk, dir };
    const copy = await runPhase('copy', bed);
    const direct = await runPhase('direct', bed);
    const command = await commandRss(bed);

    const m = { direct: median(direct.seconds.direct), cli: median(direct.seconds.cli), full: median(direct.seconds.full) };
    const mc = { snapstore: median(copy.seconds.snapstore), hashed: median(copy.seconds.hashed), pipe: median(copy.seconds.pipe) };
    const mib = (n: number) => n / 2 ** 20;
    const lag = Math.max(direct.stats.lagMs, copy.plain.lagMs, copy.hashed.lagMs);
    const rows = [
      { measure: 'direct snapshot, median s', snapstore: m.direct, 'rbd CLI': m.cli, 'full copy': m.full, ratio: `${(m.direct / m.full).toFixed(3)}x full, ${(m.direct / m.cli).toFixed(2)}x CLI`, target: '≤ 0.10x full, ≤ 1.0x CLI' },
      { measure: 'copy across clusters, median s', snapstore: mc.snapstore, 'rbd CLI': mc.pipe, 'full copy': '-', ratio: `${(mc.pipe / mc.snapstore).toFixed(2)}x the pipe's throughput`, target: '≥ 1.5x' },
      { measure: 'same copy + md5 & sha512 (Glance < 2.17), median s', snapstore: mc.hashed, 'rbd CLI': mc.pipe, 'full copy': '-', ratio: `${(mc.pipe / mc.hashed).toFixed(2)}x the pipe's throughput`, target: '- (CPU-bound: hashes every byte)' },
      { measure: 'copy, MiB written to the target OSD', snapstore: mib(copy.written.snapstore), 'rbd CLI': mib(copy.written.pipe), 'full copy': '-', ratio: `source holds ${mib(allocated).toFixed(0)} MiB`, target: '≈ source' },
      { measure: 'peak RSS of `snapstore snapshot`, copy, MiB', snapstore: command.copy, 'rbd CLI': '-', 'full copy': '-', ratio: 'one process, one snapshot', target: '≤ 200 MB (190.7 MiB)' },
      { measure: 'peak RSS of `snapstore snapshot`, direct, MiB', snapstore: command.direct, 'rbd CLI': direct.cliFlattenRss, 'full copy': '-', ratio: "mostly librbd's flatten (CLI: rbd flatten alone)", target: '≤ 200 MB (190.7 MiB)' },
      { measure: 'peak RSS, one coordinator after several snapshots, MiB', snapstore: `copy ${copy.plain.rssMiB.toFixed(0)}, direct ${direct.stats.rssMiB.toFixed(0)}`, 'rbd CLI': '-', 'full copy': '-', ratio: `copy with checksums: ${copy.hashed.rssMiB.toFixed(0)}`, target: '≤ 200 MB (190.7 MiB)' },
      { measure: 'worst event-loop lag, ms', snapstore: lag, 'rbd CLI': '-', 'full copy': '-', ratio: `direct ${direct.stats.lagMs.toFixed(0)}, copy ${copy.plain.lagMs.toFixed(0)}, with checksums ${copy.hashed.lagMs.toFixed(0)}; without run-queue waits ${Math.max(direct.stats.ownLagMs, copy.plain.ownLagMs, copy.hashed.ownLagMs).toFixed(0)}; warm-up runs ${Math.max(direct.stats.warmUpLagMs, copy.plain.warmUpLagMs, copy.hashed.warmUpLagMs).toFixed(0)}`, target: '≤ 50' },
    ];
    printTable(`snapshot of a ${DISK} GiB disk with ${WRITTEN_MIB} MiB written, ${RUNS} runs each after an untimed warm-up run; each path in its own process`, rows);
    saveJson('snapshot', {
      disk: { sizeBytes: DISK * GiB, allocatedBytes: allocated },
      runs: RUNS,
      seconds: { ...direct.seconds, copy: copy.seconds },
      medians: { ...m, copy: mc },
      ratios: {
        directVsFull: m.direct / m.full,
        directVsCli: m.direct / m.cli,
        copyThroughputVsPipe: mc.pipe / mc.snapstore,
        hashedCopyThroughputVsPipe: mc.pipe / mc.hashed,
      },
      writtenBytes: copy.written,
      peakRssMiB: {
        command: command,
        longRunning: { direct: direct.stats.rssMiB, copy: copy.plain.rssMiB, hashedCopy: copy.hashed.rssMiB },
        cliFlatten: direct.cliFlattenRss,
      },
      lagMs: { direct: direct.stats, copy: copy.plain, hashedCopy: copy.hashed },
    });
  } finally {
    if (glance) await stopGlance(glance.dir).catch(() => {});
    await Promise.all([a, b].filter(Boolean).map((c) => stopCluster(c!.dir).catch(() => {})));
    rmSync(dir, { recursive: true, force: true });
  }
}
