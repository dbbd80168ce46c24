// Incremental snapshots across clusters (issue 13), side by side in one run. Cluster a holds the disk (a
// BENCH_DISK_GIB disk with BENCH_WRITTEN_MIB written by `rbd bench`, random 4 MiB writes, as in
// bench/snapshot.ts); cluster b is the image store. Snapshot 1 (`incremental: true`) is a full copy that keeps
// the disk's common point; then BENCH_CHANGED_MIB of the disk changes — whole new objects (new data), 1 MiB
// overwrites inside written objects, and a discarded range of written objects, 3/8 + 3/8 + 1/4 — and the
// second snapshot of that state is timed four ways, alternating which goes first, BENCH_RUNS times each
// after an untimed warm-up round (whose results are checked against the disk, md5 of `rbd export`):
//  - snapstore incremental with `flatten: 'background'`: made from snapshot 1's image inside b (a clone of
//    its `snap`), only the changed extents read from a, usable once they are written; its flatten (no mgr
//    here: snapstore's flattener, started as soon as the snapshot returns) is timed apart;
//  - snapstore incremental flattened before it returns (the default, `flatten: 'sync'`: the image made from
//    snapshot 1's is flattened inside b first — by b's ceph-mgr with BENCH_MGR=1, else by snapstore — then
//    the changes go in);
//  - (a) snapstore's full copy of the same state (`incremental` off);
//  - (b) what cinder-backup's Ceph driver does, by the rbd CLI: a source snapshot, a copy of the previous
//    image inside b (clone of its `snap` + flatten, and the from-snapshot import-diff requires), then
//    `rbd export-diff --from-snap PREV SRC@NEW - | rbd import-diff - DEST` as a shell pipeline.
// Printed: medians, how much faster each incremental way is (targets: ≥ 8x the full copy, ≥ 1.5x (b)),
// and the bytes read from a's OSD and written to b's OSD (client op counters) against the changed bytes.
// The target writes of the incremental paths include the flatten inside b (the previous image's data,
// copied up by the OSDs of b, not sent across). Between runs the bench undoes the incremental run (its
// image, its common point and pairing), so each run starts from snapshot 1's common point.
// Checksums off, and no Glance: the images are store images only (a Glance registration is the same HTTP
// calls for every path and would not change the comparison).
// BENCH_RUNS (3), BENCH_DISK_GIB (4), BENCH_WRITTEN_MIB (1024), BENCH_CHANGED_MIB (64, a multiple of 32),
// BENCH_SETS (`defaults`; `layering` for layering + deep-flatten, no object map; both: `defaults,layering`),
// BENCH_VERIFY (1; 0 skips the md5 check of the warm-up round), BENCH_CHUNK_MIB (8: the store's object
// size, Glance's rbd_store_chunk_size default), BENCH_MGR (1: b runs a ceph-mgr; its rbd_support flattens),
// BENCH_LINK (`disks:N` or `store:N`: that side's cluster behind a link of N MiB/s, bench/link.ts, root
// only; `disks` is snapstore beside the image store, `store` is snapstore beside the disks, as nova-compute
// is; the bytes through the link are printed too). Memstore OSDs hold the data in RAM
// (SNAPSTORE_MEMSTORE_BYTES, set here to 8 GiB of capacity): at the defaults each cluster holds ~2 GiB at peak.
//
//   npm run bench:incremental       (or npm run bench -- build/bench/incremental.js)
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCluster, stopCluster, type ClusterInfo } from '../scripts/testbed.mjs';
import { CephCluster } from '../src/ceph/index.js';
import { type CoordinatorEvent, Flattener, SnapshotCoordinator, type SnapshotResult } from '../src/coordinator/index.js';
import { pairKey } from '../src/coordinator/incremental/pairing.js';
import { limitLink, type Link } from './link.js';
import { median, osdReadBytes, osdWrittenBytes, printTable, rbd, saveJson, shell, shellQuote as q, timed, writtenBytes } from './lib.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;
const OBJECT = 4 * MiB;
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const DISK_GIB = Number(process.env.BENCH_DISK_GIB ?? 4);
const WRITTEN_MIB = Number(process.env.BENCH_WRITTEN_MIB ?? 1024);
const CHANGED_MIB = Number(process.env.BENCH_CHANGED_MIB ?? 64);
const VERIFY = process.env.BENCH_VERIFY !== '0';
/** The store's chunk size (rbd_store_chunk_size: its images' object size), 8 MiB as Glance's default. */
const CHUNK_MIB = Number(process.env.BENCH_CHUNK_MIB ?? 8);
/** `store:N` or `disks:N`: that side's cluster behind a link of N MiB/s (bench/link.ts; root); unset: one host, no limit. */
const LINK = parseLink(process.env.BENCH_LINK);
/** 1: the store's cluster runs a ceph-mgr (rbd_support), which then flattens: before the changes go in (flattened before returning), or in the background. */
const MGR = process.env.BENCH_MGR === '1';

function parseLink(v: string | undefined): { side: 'store' | 'disks'; mibPerSecond: number } | null {
  if (!v) return null;
  const m = /^(store|disks):(\d+(?:\.\d+)?)$/.exec(v);
  if (!m) throw new Error(`BENCH_LINK=${v}: expected store:MiB/s or disks:MiB/s`);
  return { side: m[1] as 'store' | 'disks', mibPerSecond: Number(m[2]) };
}
const FEATURE_SETS = {
  defaults: { label: "Ceph's default features (object-map, fast-diff)", stockFeatures: true },
  layering: { label: 'layering + deep-flatten (no object map)', stockFeatures: false },
} as const;
type FeatureSet = keyof typeof FEATURE_SETS;
const DISK = 'vms/bench-disk';
/** The CLI's snapshot of the disk at snapshot 1 (the state of snapstore's first common point). */
const CLI_PREV = 'cli-prev';

type PathName = 'background' | 'incremental' | 'full' | 'cli';
interface Measure {
  seconds: number;
  /** Client bytes a's OSD read out / b's OSD took in during the path. */
  readA: number;
  writtenB: number;
  /** Bytes through the limited link (BENCH_LINK), both directions. */
  linkBytes?: number;
  /** (b) only: the part of `seconds` spent in the export-diff | import-diff pipe. */
  pipeSeconds?: number;
  /** snapstore's paths: its steps' seconds; the incremental path also what snapstore says it read from the source. */
  bytesSent?: number;
  /** background only: the flatten after the image was usable, by snapstore's flattener started at once (not in `seconds`). */
  flattenSeconds?: number;
  steps?: Record<string, number>;
}
interface Bed {
  a: ClusterInfo;
  b: ClusterInfo;
  /** Snapshot 1's image in b (the previous image both incremental paths start from). */
  first: string;
  copier: SnapshotCoordinator;
  /** The coordinator's step events (`ms` of each step done), emptied before each run. */
  steps: CoordinatorEvent[];
  link: Link | null;
}

/** Runs `path` once, measured; returns what it made (as an `rbd export` spec) and how to undo it. */
async function once(bed: Bed, path: PathName, tag: string): Promise<Measure & { image: string; undo: () => Promise<void> }> {
  const { a, b } = bed;
  // The store's mgr may have opened new connections to its OSDs: they stay off the link.
  await bed.link?.exemptOwnTraffic();
  const linkBytes = async () => (bed.link ? bed.link.bytes() : 0);
  const [readBefore, writtenBefore, linkBefore] = await Promise.all([osdReadBytes(a), osdWrittenBytes(b), linkBytes()]);
  const done = async (m: Omit<Measure, 'readA' | 'writtenB'>, image: string, undo: () => Promise<void>) => {
    const [readAfter, writtenAfter, linkAfter] = await Promise.all([osdReadBytes(a), osdWrittenBytes(b), linkBytes()]);
    const link = bed.link ? { linkBytes: linkAfter - linkBefore } : {};
    return { ...m, readA: readAfter - readBefore, writtenB: writtenAfter - writtenBefore, ...link, image, undo };
  };
  if (path === 'cli') {
    const image = `images/cli-${tag}`;
    const newSnap = `cli-new-${tag}`;
    const [tCopy] = await timed(() => shell(previousCopyLine(a, b, newSnap, `images/${bed.first}@snap`, image)));
    const [tPipe] = await timed(() => shell(diffPipeLine(a, `${DISK}@${newSnap}`, b, image)));
    return done({ seconds: tCopy + tPipe, pipeSeconds: tPipe }, `${image}@${newSnap}`, async () => {
      await rbd(b, ['snap', 'purge', '--no-progress', image]);
      await rbd(b, ['rm', '--no-progress', image]);
      await rbd(a, ['snap', 'rm', '--no-progress', `${DISK}@${newSnap}`]);
    });
  }
  const imageId = `${path}-${tag}`;
  const opts =
    path === 'incremental' ? { incremental: true, keepCommonPoints: 2 } : path === 'background' ? { incremental: true, keepCommonPoints: 2, flatten: 'background' as const } : {};
  bed.steps.length = 0;
  const [t, result] = await timed(() => bed.copier.snapshot(`rbd://${a.fsid}/${DISK}`, { imageId, checksums: 'off', ...opts }));
  checkResult(path, result, bed.first);
  const steps: Record<string, number> = {};
  for (const e of bed.steps) if (e.type === 'step' && e.state === 'done' && e.ms !== undefined) steps[e.step] = (steps[e.step] ?? 0) + e.ms / 1000;
  const flattened = bed.steps.find((e) => e.type === 'flattened');
  if (flattened?.type === 'flattened' && flattened.via === 'snapstore' && MGR) process.stdout.write(`(${path} ${tag}: flattened by snapstore: ${flattened.why})\n`);
  const m = { seconds: t, steps, ...(result.incremental ? { bytesSent: result.incremental.bytesSent } : {}) };
  const made = await done(m, `images/${imageId}@snap`, async () => {
    await dropStoreImage(b, imageId);
    if (path !== 'full') await dropCommonPoint(a, result.commonPoint!);
  });
  if (path !== 'background') return made;
  if (MGR) {
    // Usable already; the mgr's task flattens it (queued by the snapshot): timed until the image stands alone.
    const [tFlatten] = await timed(() => flattenedByMgr(b, imageId));
    return { ...made, flattenSeconds: tFlatten };
  }
  // Usable already; the flatten that follows (no mgr here: snapstore's flattener, as the store's user).
  const flattener = new Flattener({ source: { confPath: b.conf, user: 'glance', connectTimeoutMs: 10_000 }, target: { pool: 'images' }, images: [imageId] });
  try {
    const [tFlatten, outcome] = await timed(() => flattener.runOnce());
    if (outcome.flattened[0] !== imageId) throw new Error(`the flattener did not flatten ${imageId}: ${JSON.stringify(outcome)}`);
    return { ...made, flattenSeconds: tFlatten };
  } finally {
    await flattener.close();
  }
}

async function flattenedByMgr(b: ClusterInfo, imageId: string): Promise<void> {
  for (const deadline = Date.now() + 600_000; Date.now() < deadline; ) {
    const info = JSON.parse(await rbd(b, ['info', '--format', 'json', `images/${imageId}`])) as { parent?: unknown };
    if (!info.parent) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the mgr did not flatten images/${imageId} within 10 min`);
}

function checkResult(path: PathName, result: SnapshotResult, first: string): void {
  if (result.method !== 'copy') throw new Error(`expected the copy path, got ${result.method}`);
  if (path !== 'full' && path !== 'cli' && result.incremental?.from !== first) throw new Error(`expected an incremental snapshot from ${first}: ${result.fallbackReason}`);
  const later = MGR ? 'queued' : 'pending';
  if (path === 'background' && result.flatten !== later) throw new Error(`expected the flatten ${later}, got ${result.flatten}`);
  if (path === 'full' && result.incremental !== null) throw new Error('the full copy was incremental');
}

/** (b)'s first part: the source snapshot, and the copy of the previous image inside b with the from-snapshot import-diff checks for. */
function previousCopyLine(a: ClusterInfo, b: ClusterInfo, newSnap: string, previous: string, image: string): string {
  const rbdA = `rbd -c ${q(a.conf)} --id admin`;
  const rbdB = `rbd -c ${q(b.conf)} --id admin`;
  return (
    `set -e; ${rbdA} snap create ${q(`${DISK}@${newSnap}`)}; ${rbdB} clone ${q(previous)} ${q(image)}; ` +
    `${rbdB} flatten --no-progress ${q(image)}; ${rbdB} snap create ${q(`${image}@${CLI_PREV}`)}`
  );
}

/** (b)'s pipe: `rbd export-diff --from-snap PREV SRC@NEW - | rbd import-diff - DEST`, as cinder-backup runs it. */
function diffPipeLine(a: ClusterInfo, src: string, b: ClusterInfo, image: string): string {
  return (
    `set -o pipefail; rbd -c ${q(a.conf)} --id admin export-diff --no-progress --from-snap ${CLI_PREV} ${q(src)} - | ` +
    `rbd -c ${q(b.conf)} --id admin import-diff --no-progress - ${q(image)}`
  );
}

/** Removes a store image made by the coordinator (its protected `snap` first). */
async function dropStoreImage(b: ClusterInfo, imageId: string): Promise<void> {
  await rbd(b, ['snap', 'unprotect', `images/${imageId}@snap`]);
  await rbd(b, ['snap', 'purge', '--no-progress', `images/${imageId}`]);
  await rbd(b, ['rm', '--no-progress', `images/${imageId}`]);
}

/** Undoes an incremental run on the disk: its common point (`rbd://fsid/pool/image/snap`) and its pairing. */
async function dropCommonPoint(a: ClusterInfo, commonPoint: string): Promise<void> {
  const snap = commonPoint.split('/').pop()!;
  await rbd(a, ['image-meta', 'remove', DISK, pairKey(snap)]);
  await rbd(a, ['snap', 'rm', '--no-progress', `${DISK}@${snap}`]);
}

async function md5(c: ClusterInfo, spec: string): Promise<string> {
  const out = join(tmpdir(), `snapstore-bench-md5-${process.pid}`);
  try {
    await shell(`set -o pipefail; rbd -c ${q(c.conf)} --id admin export --no-progress ${q(spec)} - | md5sum > ${q(out)}`);
    return readFileSync(out, 'utf8').split(' ')[0]!;
  } finally {
    rmSync(out, { force: true });
  }
}

/**
 * Changes CHANGED_MIB of the disk through librbd (admin): 3/8 as whole objects nothing was written to (new
 * data), 3/8 as 1 MiB overwrites in as many written objects, 1/4 as discards of whole written objects.
 * Returns the bytes changed, and of them the bytes discarded.
 */
async function changeDisk(a: ClusterInfo): Promise<{ changed: number; discarded: number }> {
  const extents = JSON.parse(await rbd(a, ['diff', '--whole-object', '--format', 'json', DISK])) as Array<{ offset: number; length: number }>;
  const written = new Set(extents.flatMap((e) => Array.from({ length: e.length / OBJECT }, (_, i) => e.offset / OBJECT + i)));
  const all = Array.from({ length: (DISK_GIB * GiB) / OBJECT }, (_, i) => i);
  const spread = (xs: number[], n: number) => {
    if (xs.length < n) throw new Error(`the disk has ${xs.length} objects of the kind, ${n} needed`);
    return Array.from({ length: n }, (_, i) => xs[Math.floor((i * xs.length) / n)]!);
  };
  const unit = (CHANGED_MIB * MiB) / 8;
  const fresh = spread(all.filter((o) => !written.has(o)), (3 * unit) / OBJECT);
  const nDiscard = (2 * unit) / OBJECT;
  const used = spread([...written], (3 * unit) / MiB + nDiscard);
  // Every k-th of the written objects picked is discarded, the others get a 1 MiB overwrite.
  const step = Math.floor(used.length / nDiscard);
  const discarded = used.filter((_, i) => i % step === 0).slice(0, nDiscard);
  const overwritten = used.filter((o) => !discarded.includes(o));
  const session = await CephCluster.connect({ confPath: a.conf, user: 'admin', timeoutMs: 10_000 });
  try {
    const image = await (await session.pool('vms')).openImage('bench-disk');
    try {
      for (const o of fresh) await image.write(o * OBJECT, randomBytes(OBJECT));
      for (const o of overwritten) await image.write(o * OBJECT + MiB, randomBytes(MiB));
      for (const o of discarded) await image.discard(o * OBJECT, OBJECT);
      await image.flush();
    } finally {
      await image.close();
    }
  } finally {
    await session.close();
  }
  return { changed: fresh.length * OBJECT + overwritten.length * MiB + discarded.length * OBJECT, discarded: discarded.length * OBJECT };
}

/** Clusters a and b with the feature set's defaults, the written disk, snapshot 1 and the CLI's matching snapshot. */
async function setUp(set: FeatureSet, dir: string): Promise<Bed> {
  const stockFeatures = FEATURE_SETS[set].stockFeatures;
  const [a, b] = await Promise.all([startCluster(join(dir, 'a'), { cloneV2: true, stockFeatures }), startCluster(join(dir, 'b'), { stockFeatures, mgr: MGR })]);
  await rbd(a, ['create', DISK, '--size', `${DISK_GIB}G`]);
  await rbd(a, ['bench', '--io-type', 'write', '--io-size', '4M', '--io-total', `${WRITTEN_MIB}M`, '--io-pattern', 'rand', DISK]);
  const steps: CoordinatorEvent[] = [];
  const copier = new SnapshotCoordinator({
    logger: (e) => void ((e.type === 'step' || e.type === 'flattened') && steps.push(e)),
    source: { confPath: a.conf, user: 'nova', pool: 'vms', connectTimeoutMs: 10_000 },
    target: { kind: 'rbd', confPath: b.conf, user: 'glance', pool: 'images', chunkSizeMiB: CHUNK_MIB, thinProvisioning: true, connectTimeoutMs: 10_000 },
  });
  const first = await copier.snapshot(`rbd://${a.fsid}/${DISK}`, { imageId: 'first', checksums: 'off', incremental: true, keepCommonPoints: 2 });
  if (!first.commonPoint) throw new Error('snapshot 1 kept no common point');
  await rbd(a, ['snap', 'create', `${DISK}@${CLI_PREV}`]);
  return { a, b, first: first.imageId, copier, steps, link: null };
}

/** The warm-up round: one run of each path, its result checked against the disk, then undone (each starts from snapshot 1). */
async function warmUp(bed: Bed): Promise<void> {
  const want = VERIFY ? await md5(bed.a, DISK) : '';
  for (const path of ['background', 'incremental', 'full', 'cli'] as const) {
    const m = await once(bed, path, 'warm-up');
    if (VERIFY) {
      const got = await md5(bed.b, m.image);
      if (got !== want) throw new Error(`${m.image} differs from the disk (md5 ${got}, the disk ${want})`);
    }
    await m.undo();
  }
}

async function benchSet(set: FeatureSet): Promise<unknown> {
  const dir = mkdtempSync(join(tmpdir(), 'snapstore-bench-inc-'));
  process.env.SNAPSTORE_MEMSTORE_BYTES = String(8 * GiB);
  let bed: Bed | undefined;
  try {
    bed = await setUp(set, dir);
    const allocated = await writtenBytes(bed.a, DISK);
    const change = await changeDisk(bed.a);
    const diff = await diffBytes(bed.a);
    if (LINK) bed.link = await limitLink(LINK.side === 'store' ? bed.b : bed.a, LINK.mibPerSecond);
    await warmUp(bed);
    const runs: Record<PathName, Measure[]> = { background: [], incremental: [], full: [], cli: [] };
    const orders: PathName[][] = [
      ['background', 'incremental', 'full', 'cli'],
      ['cli', 'background', 'incremental', 'full'],
      ['full', 'cli', 'background', 'incremental'],
      ['incremental', 'full', 'cli', 'background'],
    ];
    for (let i = 0; i < RUNS; i++) {
      for (const path of orders[i % orders.length]!) {
        const { image: _image, undo, ...m } = await once(bed, path, String(i));
        runs[path].push(m);
        await undo();
      }
    }
    const figures = { allocated, ...change, diff, runs };
    printTable(
      `${FEATURE_SETS[set].label}: the second snapshot across clusters of a ${DISK_GIB} GiB disk with ${mib(allocated).toFixed(0)} MiB allocated, ` +
        `${mib(change.changed)} MiB changed since the first (${mib(change.discarded)} MiB of it discarded); median of ${RUNS} runs each after an untimed warm-up round; checksums off, no Glance; ` +
        `the store's objects ${CHUNK_MIB} MiB; ${MGR ? "a ceph-mgr in the store's cluster; " : ''}${LINK ? `the ${LINK.side} side's cluster behind a ${LINK.mibPerSecond} MiB/s link` : 'both clusters on this host, no link limit'}`,
      tableRows(figures),
    );
    process.stdout.write(
      `\nWhere snapstore's time goes (median s of its slowest steps):\n${stepLine('incremental, background flatten', runs.background)}\n` +
        `${stepLine('incremental, flattened before returning', runs.incremental)}\n${stepLine('full copy', runs.full)}\n`,
    );
    return figures;
  } finally {
    await bed?.link?.close();
    await bed?.copier.close();
    await Promise.all([join(dir, 'a'), join(dir, 'b')].map((d) => stopCluster(d).catch(() => {})));
    rmSync(dir, { recursive: true, force: true });
  }
}

/** What `rbd diff --from-snap` lists between snapshot 1's state and the disk now: data and zeroed extents. */
async function diffBytes(a: ClusterInfo): Promise<{ data: number; zeroed: number }> {
  const extents = JSON.parse(await rbd(a, ['diff', '--from-snap', CLI_PREV, '--format', 'json', DISK])) as Array<{ length: number; exists: string | boolean }>;
  const data = extents.reduce((n, e) => n + (e.exists === true || e.exists === 'true' ? e.length : 0), 0);
  return { data, zeroed: extents.reduce((n, e) => n + e.length, 0) - data };
}

/** The path's slowest steps, median seconds each. */
function stepLine(label: string, runs: Measure[]): string {
  const names = [...new Set(runs.flatMap((r) => Object.keys(r.steps ?? {})))];
  const medians = names.map((n) => [n, median(runs.map((r) => r.steps?.[n] ?? 0))] as const).sort((x, y) => y[1] - x[1]);
  return `- ${label}: ${medians.slice(0, 4).map(([n, t]) => `${n} ${t.toFixed(3)}`).join(', ')}`;
}

function mib(n: number): number {
  return n / MiB;
}

interface Figures {
  allocated: number;
  changed: number;
  discarded: number;
  diff: { data: number; zeroed: number };
  runs: Record<PathName, Measure[]>;
}

function tableRows(f: Figures): Array<Record<string, string | number>> {
  const m = (path: PathName, key: 'seconds' | 'readA' | 'writtenB' | 'linkBytes') => median(f.runs[path].map((r) => r[key] ?? 0));
  const pipe = median(f.runs.cli.map((r) => r.pipeSeconds ?? 0));
  const sent = median(f.runs.background.map((r) => r.bytesSent ?? 0));
  const flatten = median(f.runs.background.map((r) => r.flattenSeconds ?? 0));
  // How much faster each incremental way is than `path`: background (the headline) / flattened before returning.
  const faster = (path: PathName) => `${(m(path, 'seconds') / m('background', 'seconds')).toFixed(2)}x / ${(m(path, 'seconds') / m('incremental', 'seconds')).toFixed(2)}x faster`;
  const row = (path: PathName, label: string, ratio: string, target: string) => ({
    path: label,
    'median s': m(path, 'seconds'),
    'incremental (background / flattened) is': ratio,
    target,
    'MiB read from a (source) OSD': mib(m(path, 'readA')),
    'MiB written to b (target) OSD': mib(m(path, 'writtenB')),
    ...(LINK ? { [`MiB over the link (${LINK.side} side)`]: mib(m(path, 'linkBytes')) } : {}),
  });
  return [
    row('background', `snapstore incremental, --flatten background: usable (bytesSent ${mib(sent).toFixed(1)} MiB; flattened ${flatten.toFixed(2)} s later)`, '-', '-'),
    row('incremental', 'snapstore incremental, flattened before returning', '-', '-'),
    row('full', '(a) snapstore full copy', faster('full'), '≥ 8x'),
    row('cli', `(b) clone+flatten, then export-diff \\| import-diff (the pipe: ${pipe.toFixed(3)} s)`, faster('cli'), '≥ 1.5x'),
    {
      path: `changed on the disk: ${mib(f.changed)} MiB, ${mib(f.discarded)} MiB of it discarded; rbd diff since snapshot 1: ${mib(f.diff.data).toFixed(1)} MiB data, ${mib(f.diff.zeroed).toFixed(1)} MiB zeroed`,
      'median s': '-',
      'incremental (background / flattened) is': '-',
      target: 'bytes crossing ≈ changed',
      'MiB read from a (source) OSD': mib(f.changed - f.discarded),
      'MiB written to b (target) OSD': `${mib(f.allocated).toFixed(0)} allocated on the disk at snapshot 1`,
      ...(LINK ? { [`MiB over the link (${LINK.side} side)`]: '-' } : {}),
    },
  ];
}

async function main(): Promise<void> {
  const sets = (process.env.BENCH_SETS ?? 'defaults').split(',').filter((x): x is FeatureSet => x in FEATURE_SETS);
  const all: Record<string, unknown> = {};
  for (const set of sets) all[set] = await benchSet(set);
  saveJson('incremental', { runs: RUNS, diskGiB: DISK_GIB, writtenMiB: WRITTEN_MIB, changedMiB: CHANGED_MIB, chunkMiB: CHUNK_MIB, link: LINK, mgr: MGR, sets: all });
}

await main();
