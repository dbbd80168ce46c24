// Shared pieces of the benchmarks: clusters they start and stop themselves, the rbd CLI, timing, medians,
// peak RSS and event-loop lag sampling, and the result table.
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { lagMonitor, startStallRecorder, type LagReport } from '../scripts/lag-monitor.mjs';
import type { ClusterInfo } from '../scripts/testbed.mjs';

const run = promisify(execFile);
export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export async function rbd(cluster: ClusterInfo, args: string[], user = 'admin'): Promise<string> {
  const { stdout } = await run('rbd', ['-c', cluster.conf, '--id', user, ...args], { maxBuffer: 1 << 26 });
  return stdout;
}

/** `s` quoted for bash. */
export const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
const q = shellQuote;

/**
 * `rbd export SRC - | rbd import - DST` between two clusters, as an operator would pipe them: a shell
 * pipeline, so the bytes go from one rbd process to the other directly, not through this process (which
 * would count them in the benchmark's own RSS).
 */
export function rbdPipeLine(from: ClusterInfo, src: string, to: ClusterInfo, dst: string): string {
  return (
    `set -o pipefail; rbd -c ${q(from.conf)} --id admin export --no-progress ${q(src)} - | ` +
    `rbd -c ${q(to.conf)} --id admin import --no-progress - ${q(dst)}`
  );
}

/**
 * `rbd export-diff SRC@SNAP - | rbd import-diff - DST` (DST created first, as big as SRC): the CLI's sparse
 * copy, which reads only what the source's diff lists.
 */
export function rbdDiffPipeLine(from: ClusterInfo, src: string, to: ClusterInfo, dst: string, sizeBytes: number): string {
  return (
    `set -o pipefail; rbd -c ${q(to.conf)} --id admin create --size ${sizeBytes}B ${q(dst)} && ` +
    `rbd -c ${q(from.conf)} --id admin export-diff --no-progress ${q(src)} - | ` +
    `rbd -c ${q(to.conf)} --id admin import-diff --no-progress - ${q(dst)}`
  );
}

/** Runs a shell pipeline built by rbdPipeLine / rbdDiffPipeLine. */
export async function shell(line: string): Promise<void> {
  await run('bash', ['-c', line]);
}

/** Bytes of data the image holds, extent by extent (`rbd diff`: exact, not rounded up to whole objects). */
export async function writtenBytes(cluster: ClusterInfo, image: string): Promise<number> {
  const extents = JSON.parse(await rbd(cluster, ['diff', '--format', 'json', image])) as Array<{ length: number; exists: string | boolean }>;
  return extents.reduce((n, e) => n + (e.exists === true || e.exists === 'true' ? e.length : 0), 0);
}

export async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t0 = process.hrtime.bigint();
  const value = await fn();
  return [Number(process.hrtime.bigint() - t0) / 1e9, value];
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

let stallLog: string | undefined;

/**
 * Starts this process's stall recorder (scripts/lag-monitor.mjs), whose log withLag reads to tell stops of
 * the whole machine (its host throttling the VM) from this process's own lag. A process of its own, so its
 * memory is not in this one's peak RSS; started ahead of the measured runs, so its start is not in them.
 */
export function recordStalls(dir: string): { stop: () => void } {
  const file = join(dir, `stalls-${process.pid}.log`);
  const recorder = startStallRecorder(file);
  stallLog = file;
  return {
    stop() {
      recorder.stop();
      stallLog = undefined;
    },
  };
}

/** Event-loop lag (scripts/lag-monitor.mjs, shared with the native tests) while `fn` runs. */
export async function withLag<T>(fn: () => Promise<T>): Promise<[LagReport, T]> {
  const monitor = lagMonitor(stallLog ? { stalls: stallLog } : {});
  try {
    const value = await fn();
    return [monitor.stop(), value];
  } catch (err) {
    monitor.stop();
    throw err;
  }
}

/** Peak RSS of this process (VmHWM), MiB. */
export function peakRssMiB(): number {
  const kB = Number(/^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]);
  return Number.isFinite(kB) ? kB / 1024 : process.resourceUsage().maxRSS / 1024;
}

/**
 * Runs a command to completion: its stdout and its peak RSS in MiB (rusage, read by a python3 wrapper). For
 * a shell pipeline (`bash -c`), the peak of its largest process.
 */
export async function commandPeakRss(cmd: string, args: string[]): Promise<{ stdout: string; rssMiB: number }> {
  const py =
    'import resource,subprocess,sys\n' +
    'r = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE)\n' +
    'sys.stdout.write(r.stdout.decode() + "\\n" + str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) + "\\n")\n' +
    'sys.exit(r.returncode)';
  const { stdout } = await run('python3', ['-c', py, cmd, ...args], { maxBuffer: 1 << 24 });
  const lines = stdout.trimEnd().split('\n');
  return { stdout: lines.slice(0, -1).join('\n'), rssMiB: Number(lines.at(-1)) / 1024 };
}

async function osdCounters(cluster: ClusterInfo): Promise<Record<string, number>> {
  const { stdout } = await run('ceph', ['--admin-daemon', join(cluster.dir, 'run', 'osd.0.asok'), 'perf', 'dump']);
  return (JSON.parse(stdout) as { osd: Record<string, number> }).osd;
}

/** Bytes clients wrote to the cluster's OSD so far (its op_w_in_bytes + op_rw_in_bytes perf counters). */
export async function osdWrittenBytes(cluster: ClusterInfo): Promise<number> {
  const osd = await osdCounters(cluster);
  return (osd.op_w_in_bytes ?? 0) + (osd.op_rw_in_bytes ?? 0);
}

/** Bytes clients read from the cluster's OSD so far (its op_r_out_bytes + op_rw_out_bytes perf counters). */
export async function osdReadBytes(cluster: ClusterInfo): Promise<number> {
  const osd = await osdCounters(cluster);
  return (osd.op_r_out_bytes ?? 0) + (osd.op_rw_out_bytes ?? 0);
}

export interface Row {
  [column: string]: string | number;
}

export function printTable(title: string, rows: Row[]): void {
  const cols = Object.keys(rows[0] ?? {});
  const fmt = (v: string | number) => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(3)) : v);
  process.stdout.write(`\n${title}\n\n| ${cols.join(' | ')} |\n|${cols.map(() => '---').join('|')}|\n`);
  for (const r of rows) process.stdout.write(`| ${cols.map((c) => fmt(r[c]!)).join(' | ')} |\n`);
}

export function saveJson(name: string, value: unknown): void {
  const dir = join(repoRoot, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${name}.json`), `${JSON.stringify(value, null, 2)}\n`);
  process.stdout.write(`\n(JSON: bench/results/${name}.json)\n`);
}
