// Snapshot benchmark, side by side in one run (issues 7 and 20), on two feature sets in turn: Ceph's
// defaults (exclusive-lock, object-map, fast-diff, deep-flatten) and layering + deep-flatten (no object map:
// what clouds that chose krbd-compatible features have). For each:
//  1. direct snapshot (SnapshotCoordinator) vs the same steps by the rbd CLI vs the nova-style full copy
//     (rbd export to a local file + Glance PUT /file);
//  2. the copy path across two clusters vs `rbd export - | rbd import -`: without checksums (like the pipe;
//     what `checksums: auto` does without Glance or with Glance ≥ 2.17, which hashes locations itself) and
//     with md5+sha512 computed inline (what auto does for an older Glance);
//  3. the copy of a 1 TiB disk holding the same amount of data as a 1 GiB one, vs the 1 GiB copy and vs
//     `rbd export-diff | rbd import-diff` of the 1 TiB disk;
//  4. peak RSS beside the CLI's for the same operation, and worst event-loop lag of the snapstore runs: raw,
//     without the JS thread's run-queue waits, and without the stops of the whole machine as well (a stall
//     recorder process beside each phase, scripts/lag-monitor.mjs: on a VM its host throttles, both vCPUs
//     stop at once, which the guest's run-queue figures cannot see).
// Each path runs in its own child process (forked from this file), so its peak RSS is its own: glibc keeps
// what a flatten frees, and one process running both paths would report the sum.
// Targets (issue 20): direct ≤ 1.0x the CLI; copy ≥ 1.5x the pipe's throughput; RSS ≤ the CLI's + 64 MiB;
// lag ≤ 50 ms; the 1 TiB copy ≤ 2x the 1 GiB copy and ≥ 1.5x faster than export-diff | import-diff.
// BENCH_RUNS (3), BENCH_DISK_GIB (4), BENCH_WRITTEN_MIB (1024), BENCH_SPARSE_MIB (256), BENCH_SETS
// (`defaults,layering`) choose the size of the run; BENCH_PHASES (`copy,direct,sparse,command`) runs some
// phases only (for a narrower look: the table then has the rows of those phases).
import { execFile, fork } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startCluster, startGlance, stopCluster, stopGlance, type ClusterInfo, type GlanceInfo } from '../scripts/testbed.mjs';
import { SnapshotCoordinator } from '../src/coordinator/index.js';
import {
  commandPeakRss,
  median,
  osdWrittenBytes,
  peakRssMiB,
  printTable,
  rbd,
  recordStalls,
  rbdDiffPipeLine,
  rbdPipeLine,
  repoRoot,
  saveJson,
  shell,
  timed,
  withLag,
  writtenBytes,
} from './lib.js';

const run = promisify(execFile);
const GiB = 1024 ** 3;
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const DISK = Number(process.env.BENCH_DISK_GIB ?? 4);
const WRITTEN_MIB = Number(process.env.BENCH_WRITTEN_MIB ?? 1024);
const SPARSE_MIB = Number(process.env.BENCH_SPARSE_MIB ?? 256);
const TiB = 1024 * GiB;
const PHASES = new Set((process.env.BENCH_PHASES ?? 'copy,direct,sparse,command').split(','));

/** The feature sets compared: `stockFeatures` leaves ceph.conf without `rbd default features`. */
const FEATURE_SETS = {
  defaults: { label: "Ceph's default features (object-map, fast-diff)", stockFeatures: true },
  layering: { label: 'layering + deep-flatten (no object map)', stockFeatures: false },
} as const;
type FeatureSet = keyof typeof FEATURE_SETS;

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
  /** Disks of 1 GiB and 1 TiB holding SPARSE_MIB each. */
  sparse: { small: string; large: string };
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
  /** ownLagMs without the stops of the whole machine the stall recorder saw too (LagReport.worstUnsharedMs). */
  unsharedLagMs: number;
  /** The longest stop of the whole machine during the timed runs (LagReport.worstStallMs). */
  stallMs: number;
}

const sourceConfig = (c: ClusterInfo) => ({ confPath: c.conf, user: 'nova', pool: 'vms', connectTimeoutMs: 10_000 });
const targetConfig = (c: ClusterInfo) =>
  ({ kind: 'rbd', confPath: c.conf, user: 'glance', pool: 'images', chunkSizeMiB: 8, thinProvisioning: true, connectTimeoutMs: 10_000 }) as const;

/** The copy path vs the rbd pipe, from cluster a into cluster b; with and without checksums. */
async function copyPhase({ a, b, disk }: Bed) {
  const copier = new SnapshotCoordinator({ source: sourceConfig(a), target: targetConfig(b) });
  const plain: PathStats = { rssMiB: 0, lagMs: 0, warmUpLagMs: 0, ownLagMs: 0, unsharedLagMs: 0, stallMs: 0 };
  const hashed: PathStats = { rssMiB: 0, lagMs: 0, warmUpLagMs: 0, ownLagMs: 0, unsharedLagMs: 0, stallMs: 0 };
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
      stats.unsharedLagMs = Math.max(stats.unsharedLagMs, lag.worstUnsharedMs ?? lag.worstOwnMs);
      stats.stallMs = Math.max(stats.stallMs, lag.worstStallMs ?? 0);
    }
    if (checksums === 'off') written.snapstore = (await osdWrittenBytes(b)) - before;
    await rbd(b, ['snap', 'unprotect', `images/${id}@snap`]);
    await rbd(b, ['snap', 'purge', `images/${id}`]);
    await rbd(b, ['rm', '--no-progress', `images/${id}`]);
    return t;
  };
  const pipeOnce = async (id: string): Promise<number> => {
    const before = await osdWrittenBytes(b);
    const [t] = await timed(() => shell(rbdPipeLine(a, `${disk}@pipe`, b, `images/${id}`)));
    written.pipe = (await osdWrittenBytes(b)) - before;
    await rbd(b, ['rm', '--no-progress', `images/${id}`]);
    return t;
  };
  // One untimed run of each first (the pipe's measures its peak RSS); then alternate which goes first.
  await copyOnce('copy-warm-up', 'off', true);
  const pipeRssMiB = (await commandPeakRss('bash', ['-c', rbdPipeLine(a, `${disk}@pipe`, b, 'images/pipe-warm-up')])).rssMiB;
  await rbd(b, ['rm', '--no-progress', 'images/pipe-warm-up']);
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
  return { seconds, written, plain, hashed, pipeRssMiB };
}

/** Removes an image a phase made in `images` of `c`, with its protected `snap` when it has one. */
async function dropImage(c: ClusterInfo, id: string, snap: boolean): Promise<void> {
  if (snap) {
    await rbd(c, ['snap', 'unprotect', `images/${id}@snap`]);
    await rbd(c, ['snap', 'purge', `images/${id}`]);
  }
  await rbd(c, ['rm', '--no-progress', `images/${id}`]);
}

/**
 * The copy of the 1 GiB and the 1 TiB disk holding the same amount of data, without checksums, and
 * `rbd export-diff | rbd import-diff` of the 1 TiB one; the peak RSS of this process after each copy size.
 */
async function sparsePhase({ a, b, sparse }: Bed) {
  const copier = new SnapshotCoordinator({ source: sourceConfig(a), target: targetConfig(b) });
  const seconds = { small: [] as number[], large: [] as number[], diffPipe: [] as number[] };
  let lagMs = 0;
  let ownLagMs = 0;
  let unsharedLagMs = 0;
  let stallMs = 0;
  const copyOnce = async (disk: string, id: string, warmUp = false): Promise<number> => {
    const [lag, [t, result]] = await withLag(() => timed(() => copier.snapshot(`rbd://${a.fsid}/${disk}`, { imageId: id, checksums: 'off' })));
    if (result.method !== 'copy') throw new Error(`expected the copy path, got ${result.method}`);
    // The warm-up run's lag is the first connections' (loading librados, connecting), as in the other phases.
    if (!warmUp) {
      lagMs = Math.max(lagMs, lag.worstMs);
      ownLagMs = Math.max(ownLagMs, lag.worstOwnMs);
      unsharedLagMs = Math.max(unsharedLagMs, lag.worstUnsharedMs ?? lag.worstOwnMs);
      stallMs = Math.max(stallMs, lag.worstStallMs ?? 0);
    }
    await dropImage(b, id, true);
    return t;
  };
  await rbd(a, ['snap', 'create', `${sparse.large}@diff`], 'nova');
  const diffOnce = async (id: string): Promise<number> => {
    const [t] = await timed(() => shell(rbdDiffPipeLine(a, `${sparse.large}@diff`, b, `images/${id}`, TiB)));
    await rbd(b, ['snap', 'purge', `images/${id}`]);
    await dropImage(b, id, false);
    return t;
  };
  await copyOnce(sparse.small, 'sparse-warm-up', true);
  for (let i = 0; i < RUNS; i++) seconds.small.push(await copyOnce(sparse.small, `small-${i}`));
  const rssSmall = peakRssMiB();
  // The two copies side by side (alternating which goes first), and the diff pipes after them: removing
  // the pipe's 1 TiB target leaves its OSD busy for a while, which must not land on one copy size only.
  for (let i = 0; i < RUNS; i++) {
    const order = i % 2 === 0 ? (['large', 'small'] as const) : (['small', 'large'] as const);
    for (const which of order) seconds[which].push(await copyOnce(sparse[which], `${which}-${i}b`));
  }
  const rssLarge = peakRssMiB();
  for (let i = 0; i < RUNS; i++) seconds.diffPipe.push(await diffOnce(`diff-${i}`));
  const diffPipeRssMiB = (await commandPeakRss('bash', ['-c', rbdDiffPipeLine(a, `${sparse.large}@diff`, b, 'images/diff-rss', TiB)])).rssMiB;
  await rbd(b, ['snap', 'purge', 'images/diff-rss']);
  await dropImage(b, 'diff-rss', false);
  await rbd(a, ['snap', 'rm', `${sparse.large}@diff`], 'nova');
  await copier.close();
  return { seconds, lagMs, ownLagMs, unsharedLagMs, stallMs, rssMiB: { small: rssSmall, large: rssLarge, diffPipe: diffPipeRssMiB } };
}

/** The direct path vs the same steps by the rbd CLI vs the nova-style full copy, all on cluster a. */
async function directPhase({ a, glance, disk, dir }: Bed) {
  const direct = new SnapshotCoordinator({ source: sourceConfig(a), target: targetConfig(a), glance: { endpoint: glance.url } });
  const stats: PathStats = { rssMiB: 0, lagMs: 0, warmUpLagMs: 0, ownLagMs: 0, unsharedLagMs: 0, stallMs: 0 };
  const seconds = { direct: [] as number[], cli: [] as number[], full: [] as number[] };
  const directOnce = async (name: string, warmUp = false): Promise<number> => {
    const [lag, [t, result]] = await withLag(() => timed(() => direct.snapshot(`rbd://${a.fsid}/${disk}`, { name })));
    if (result.method !== 'direct') throw new Error(`expected the direct path, got ${result.method}: ${result.fallbackReason}`);
    if (warmUp) stats.warmUpLagMs = lag.worstMs;
    else {
      stats.lagMs = Math.max(stats.lagMs, lag.worstMs);
      stats.ownLagMs = Math.max(stats.ownLagMs, lag.worstOwnMs);
      stats.unsharedLagMs = Math.max(stats.unsharedLagMs, lag.worstUnsharedMs ?? lag.worstOwnMs);
      stats.stallMs = Math.max(stats.stallMs, lag.worstStallMs ?? 0);
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

type Phases = {
  copy: Awaited<ReturnType<typeof copyPhase>>;
  direct: Awaited<ReturnType<typeof directPhase>>;
  sparse: Awaited<ReturnType<typeof sparsePhase>>;
};

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
  const phase = process.env.BENCH_PHASE;
  const stalls = recordStalls(bed.dir);
  // The recorder's first ticks (its start-up) are not a stop of the machine.
  await new Promise((resolve) => setTimeout(resolve, 500));
  const result = phase === 'copy' ? await copyPhase(bed) : phase === 'sparse' ? await sparsePhase(bed) : await directPhase(bed);
  stalls.stop();
  process.send!(result, () => process.disconnect());
} else {
  await main();
}

async function main(): Promise<void> {
  const sets = (process.env.BENCH_SETS ?? 'defaults,layering').split(',').filter((x): x is FeatureSet => x in FEATURE_SETS);
  const all: Record<string, unknown> = {};
  for (const set of sets) all[set] = await benchSet(set);
  saveJson('snapshot', { runs: RUNS, sets: all });
}

/** Starts clusters a and b (+ Glance on a) with the feature set's defaults and the disks the phases read. */
async function startBed(set: FeatureSet, dir: string): Promise<Bed> {
  const stockFeatures = FEATURE_SETS[set].stockFeatures;
  const [a, b] = await Promise.all([startCluster(join(dir, 'a'), { cloneV2: true, stockFeatures }), startCluster(join(dir, 'b'), { stockFeatures })]);
  const glance = await startGlance(join(dir, 'glance'), a.dir);
  const disk = 'vms/bench-disk';
  const sparse = { small: 'vms/sparse-1g', large: 'vms/sparse-1t' };
  await rbd(a, ['create', disk, '--size', `${DISK}G`], 'nova');
  await rbd(a, ['create', sparse.small, '--size', '1G'], 'nova');
  await rbd(a, ['create', sparse.large, '--size', '1T'], 'nova');
  const bench = (image: string, mib: number) =>
    rbd(a, ['bench', '--io-type', 'write', '--io-size', '4M', '--io-total', `${mib}M`, '--io-pattern', 'rand', image], 'nova');
  await bench(disk, WRITTEN_MIB);
  await bench(sparse.small, SPARSE_MIB);
  await bench(sparse.large, SPARSE_MIB);
  return { a, b, glance, disk, sparse, dir };
}

/** Every phase on one feature set, each in its own process; prints the set's table, returns its figures. */
async function benchSet(set: FeatureSet): Promise<unknown> {
  const dir = mkdtempSync(join(tmpdir(), 'snapstore-bench-'));
  process.env.SNAPSTORE_MEMSTORE_BYTES = String(10 * GiB);
  let bed: Bed | undefined;
  try {
    bed = await startBed(set, dir);
    const allocated = await writtenBytes(bed.a, bed.disk);
    const b = bed;
    const phase = <K extends keyof Phases>(name: K) => (PHASES.has(name) ? runPhase(name, b) : Promise.resolve(undefined));
    const copy = await phase('copy');
    const direct = await phase('direct');
    const sparse = await phase('sparse');
    const command = PHASES.has('command') ? await commandRss(bed) : undefined;
    const figures: Figures = { allocated, copy, direct, sparse, command };
    printTable(
      `${FEATURE_SETS[set].label}: a ${DISK} GiB disk with ${WRITTEN_MIB} MiB written; 1 GiB and 1 TiB disks with ${SPARSE_MIB} MiB; ${RUNS} runs each after an untimed warm-up run; each path in its own process`,
      tableRows(figures),
    );
    return figures;
  } finally {
    if (bed) await stopGlance(bed.glance.dir).catch(() => {});
    await Promise.all([join(dir, 'a'), join(dir, 'b')].map((d) => stopCluster(d).catch(() => {})));
    rmSync(dir, { recursive: true, force: true });
  }
}

/** What one feature set measured; a phase left out by BENCH_PHASES is undefined. */
interface Figures {
  allocated: number;
  copy: Phases['copy'] | undefined;
  direct: Phases['direct'] | undefined;
  sparse: Phases['sparse'] | undefined;
  command: { direct: number; copy: number } | undefined;
}

type Row = { measure: string; snapstore: string | number; 'rbd CLI': string | number; ratio: string; target: string };
// Function declarations, not consts: main() runs (top-level await) before this part of the module is evaluated.
function row(measure: string, snapstore: string | number, cli: string | number, ratio: string, target: string): Row {
  return { measure, snapstore, 'rbd CLI': cli, ratio, target };
}
function mib(n: number): number {
  return n / 2 ** 20;
}

function tableRows(f: Figures): Row[] {
  const { copy, direct, sparse, command } = f;
  const lags = [direct?.stats.lagMs, copy?.plain.lagMs, copy?.hashed.lagMs, sparse?.lagMs].filter((x): x is number => x !== undefined);
  const own = [direct?.stats.ownLagMs, copy?.plain.ownLagMs, copy?.hashed.ownLagMs, sparse?.ownLagMs].filter((x): x is number => x !== undefined);
  const unshared = [direct?.stats.unsharedLagMs, copy?.plain.unsharedLagMs, copy?.hashed.unsharedLagMs, sparse?.unsharedLagMs].filter((x): x is number => x !== undefined);
  const stalls = [direct?.stats.stallMs, copy?.plain.stallMs, copy?.hashed.stallMs, sparse?.stallMs].filter((x): x is number => x !== undefined);
  const lagParts = [
    direct && `direct ${direct.stats.lagMs.toFixed(0)}`,
    copy && `copy ${copy.plain.lagMs.toFixed(0)}, with checksums ${copy.hashed.lagMs.toFixed(0)}`,
    sparse && `sparse ${sparse.lagMs.toFixed(0)}`,
  ].filter(Boolean);
  return [
    ...(direct ? directRows(direct) : []),
    ...(copy ? copyRows(copy, f.allocated) : []),
    ...(sparse ? sparseRows(sparse) : []),
    ...(command && copy && direct ? rssRows(command, copy, direct) : []),
    row('worst event-loop lag, ms', Math.max(...lags), '-', `${lagParts.join(', ')}; without run-queue waits ${Math.max(...own).toFixed(0)}; without whole-machine stops too ${Math.max(...unshared).toFixed(0)}${direct ? ` (direct ${direct.stats.unsharedLagMs.toFixed(0)})` : ''}; longest whole-machine stop ${Math.max(...stalls).toFixed(0)}`, '≤ 50'),
  ];
}

function directRows(direct: Phases['direct']): Row[] {
  const m = { direct: median(direct.seconds.direct), cli: median(direct.seconds.cli), full: median(direct.seconds.full) };
  return [row('direct snapshot, median s', m.direct, m.cli, `${(m.direct / m.cli).toFixed(2)}x CLI, ${(m.direct / m.full).toFixed(3)}x full copy (${m.full.toFixed(1)} s)`, '≤ 1.0x CLI')];
}

function copyRows(copy: Phases['copy'], allocated: number): Row[] {
  const mc = { snapstore: median(copy.seconds.snapstore), hashed: median(copy.seconds.hashed), pipe: median(copy.seconds.pipe) };
  return [
    row('copy across clusters, median s', mc.snapstore, mc.pipe, `${(mc.pipe / mc.snapstore).toFixed(2)}x the pipe's throughput`, '≥ 1.5x'),
    row('same copy + md5 & sha512 (Glance < 2.17), median s', mc.hashed, mc.pipe, `${(mc.pipe / mc.hashed).toFixed(2)}x the pipe's throughput`, '- (hashes every byte)'),
    row('copy, MiB written to the target OSD', mib(copy.written.snapstore), mib(copy.written.pipe), `source holds ${mib(allocated).toFixed(0)} MiB`, '≈ source'),
  ];
}

function sparseRows(sparse: Phases['sparse']): Row[] {
  const ms = { small: median(sparse.seconds.small), large: median(sparse.seconds.large), diffPipe: median(sparse.seconds.diffPipe) };
  return [
    row('copy of the 1 TiB disk, median s', ms.large, ms.diffPipe, `${(ms.large / ms.small).toFixed(2)}x the 1 GiB copy (${ms.small.toFixed(2)} s); ${(ms.diffPipe / ms.large).toFixed(2)}x faster than export-diff \\| import-diff`, '≤ 2x; ≥ 1.5x'),
    row('peak RSS, sparse copies, after 1 GiB / after 1 TiB, MiB', `${sparse.rssMiB.small.toFixed(0)} / ${sparse.rssMiB.large.toFixed(0)}`, sparse.rssMiB.diffPipe, 'CLI: export-diff \\| import-diff of 1 TiB', 'flat in disk size'),
  ];
}

function rssRows(command: { direct: number; copy: number }, copy: Phases['copy'], direct: Phases['direct']): Row[] {
  return [
    row('peak RSS, `snapstore snapshot` copy vs the pipe, MiB', command.copy, copy.pipeRssMiB, `+${(command.copy - copy.pipeRssMiB).toFixed(0)} MiB`, '≤ CLI + 64'),
    row('peak RSS, `snapstore snapshot` direct vs `rbd flatten`, MiB', command.direct, direct.cliFlattenRss, `+${(command.direct - direct.cliFlattenRss).toFixed(0)} MiB`, '≤ CLI + 64'),
    row('peak RSS, one coordinator after several snapshots, MiB', `copy ${copy.plain.rssMiB.toFixed(0)}, direct ${direct.stats.rssMiB.toFixed(0)}`, '-', `copy with checksums: ${copy.hashed.rssMiB.toFixed(0)}`, '-'),
  ];
}
