// Event-loop lag as the native tests and the benchmarks measure it: a 10 ms interval timer, its worst delay,
// and the same with the time the JS thread spent waiting for a CPU taken out (read from
// /proc/thread-self/schedstat). On a loaded 2-core machine the raw figure is mostly CPU starvation (Ceph
// daemons, other processes), which no code in this process can avoid; the corrected one is what a call
// blocking the JS thread shows up in.
//
// The run-queue correction cannot see the whole machine stopped: a virtual machine its host throttles
// (CPU quota) and that has no steal-time accounting sees its timers fire late while nothing was runnable,
// so such a stop counts as the JS thread's own lag. A stall recorder (startStallRecorder: another process
// running the same timer, writing down when it was held up beyond its own run-queue waits) sees those
// stops too; given its log (`stalls`), the monitor also reports its worst lag with them taken out. A call
// blocking the JS thread, or this process's garbage collection, does not hold the recorder up, so it stays
// in that figure.
//
// Typed with JSDoc and checked by `npm run typecheck`; lag-monitor.d.mts is generated from this file.
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, realpathSync, writeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * @typedef {object} LagReport
 * @property {number} worstMs Worst delay of a 10 ms interval timer, as the event loop saw it.
 * @property {number} worstOwnMs Worst delay once the time this thread waited on the run queue during that
 *   tick is taken out: what code in this process kept the loop from running. Equals worstMs where
 *   /proc/thread-self/schedstat is unavailable.
 * @property {number} ticks
 * @property {number} [worstUnsharedMs] With `stalls`: worstOwnMs once the time the stall recorder was held
 *   up too during that tick (a stop of the whole machine) is taken out as well.
 * @property {number} [worstStallMs] With `stalls`: the longest hold-up of the stall recorder while the
 *   monitor ran, i.e. the longest stop of the whole machine.
 */

/**
 * Time the calling thread has spent runnable but waiting for a CPU (ms), or null without schedstats.
 * @returns {number | null}
 */
function runQueueWaitMs() {
  try {
    return Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[1]) / 1e6;
  } catch {
    return null;
  }
}

/** CLOCK_MONOTONIC in ms: the same clock in every process, so ticks and the recorder's stalls compare. */
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

/**
 * The stalls a recorder wrote to `file` (`start end` per line, monotonic ms); none when it is unreadable.
 * @param {string} file
 * @returns {Array<[number, number]>}
 */
function readStalls(file) {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  /** @type {Array<[number, number]>} */
  const stalls = [];
  for (const line of text.split('\n')) {
    const [from, to] = line.split(' ').map(Number);
    if (Number.isFinite(from) && Number.isFinite(to)) stalls.push([/** @type {number} */ (from), /** @type {number} */ (to)]);
  }
  return stalls;
}

/**
 * Measures event-loop delay with a 10 ms interval timer between start and stop.
 * @param {{ stalls?: string }} [opts] stalls: the log of a running stall recorder (startStallRecorder)
 * @returns {{ stop: () => LagReport }}
 */
export function lagMonitor(opts = {}) {
  const started = nowMs();
  let last = started;
  let lastWait = runQueueWaitMs();
  let worst = 0;
  let worstOwn = 0;
  let ticks = 0;
  /** Ticks that came late after the run-queue correction: [from, to, own lag], for the stall correction. */
  /** @type {Array<[number, number, number]>} */
  const late = [];
  const tick = () => {
    const now = nowMs();
    const wait = runQueueWaitMs();
    const lag = now - last - 10;
    const starved = wait !== null && lastWait !== null ? wait - lastWait : 0;
    worst = Math.max(worst, lag);
    worstOwn = Math.max(worstOwn, lag - starved);
    if (opts.stalls && lag - starved > 1 && late.length < 100_000) late.push([last + 10, now, lag - starved]);
    last = now;
    lastWait = wait;
    ticks++;
  };
  const timer = setInterval(tick, 10);
  return {
    stop() {
      clearInterval(timer);
      tick();
      /** @type {LagReport} */
      const report = { worstMs: worst, worstOwnMs: worstOwn, ticks };
      if (opts.stalls) {
        const stalls = readStalls(opts.stalls).filter(([, to]) => to > started);
        let unshared = 0;
        for (const [from, to, own] of late) {
          let shared = 0;
          for (const [a, b] of stalls) shared += Math.max(0, Math.min(to, b) - Math.max(from, a));
          unshared = Math.max(unshared, own - shared);
        }
        report.worstUnsharedMs = Math.min(worstOwn, unshared);
        report.worstStallMs = stalls.reduce((m, [a, b]) => Math.max(m, b - Math.max(a, started)), 0);
      }
      return report;
    },
  };
}

/**
 * Starts a stall recorder: another process running the same 10 ms timer, which appends to `file` each
 * interval it was held up beyond its own run-queue waits. Start it before the monitors that read it.
 * @param {string} file
 * @returns {{ pid: number | undefined, stop: () => void }}
 */
export function startStallRecorder(file) {
  // The IPC channel is how the recorder learns that this process is gone (it then exits too); neither the
  // child nor the channel keeps this process alive.
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--stall-recorder', file], { stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
  child.unref();
  child.channel?.unref();
  return {
    pid: child.pid,
    stop() {
      child.kill();
    },
  };
}

/** The recorder process (startStallRecorder). */
function recordStalls(/** @type {string} */ file) {
  const fd = openSync(file, 'a');
  let last = nowMs();
  let lastWait = runQueueWaitMs() ?? 0;
  setInterval(() => {
    const now = nowMs();
    const wait = runQueueWaitMs() ?? 0;
    const held = now - last - 10 - (wait - lastWait);
    if (held > 1) writeSync(fd, `${(now - held).toFixed(3)} ${now.toFixed(3)}\n`);
    last = now;
    lastWait = wait;
  }, 10);
  const end = () => {
    closeSync(fd);
    process.exit(0);
  };
  process.on('SIGTERM', end);
  process.on('disconnect', end);
  // Gone before this process got here: the disconnect event has passed already.
  if (!process.connected) end();
}

// Run as the recorder: argv[1] may be a symlink to this file (build/scripts), which Node resolved.
if (process.argv[2] === '--stall-recorder' && process.argv[3] && realpathSync(process.argv[1] ?? '') === fileURLToPath(import.meta.url)) {
  recordStalls(process.argv[3]);
}
