// Event-loop lag as the native tests and the benchmarks measure it: a 10 ms interval timer, its worst delay,
// and the same with the time the JS thread spent waiting for a CPU taken out (read from
// /proc/thread-self/schedstat). On a loaded 2-core machine the raw figure is mostly CPU starvation (Ceph
// daemons, other processes), which no code in this process can avoid; the corrected one is what a call
// blocking the JS thread shows up in.
//
// Typed with JSDoc and checked by `npm run typecheck`; lag-monitor.d.mts is generated from this file.
import { readFileSync } from 'node:fs';

/**
 * @typedef {object} LagReport
 * @property {number} worstMs Worst delay of a 10 ms interval timer, as the event loop saw it.
 * @property {number} worstOwnMs Worst delay once the time this thread waited on the run queue during that
 *   tick is taken out: what code in this process kept the loop from running. Equals worstMs where
 *   /proc/thread-self/schedstat is unavailable.
 * @property {number} ticks
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

/**
 * Measures event-loop delay with a 10 ms interval timer between start and stop.
 * @returns {{ stop: () => LagReport }}
 */
export function lagMonitor() {
  let last = performance.now();
  let lastWait = runQueueWaitMs();
  let worst = 0;
  let worstOwn = 0;
  let ticks = 0;
  const tick = () => {
    const now = performance.now();
    const wait = runQueueWaitMs();
    const lag = now - last - 10;
    const starved = wait !== null && lastWait !== null ? wait - lastWait : 0;
    worst = Math.max(worst, lag);
    worstOwn = Math.max(worstOwn, lag - starved);
    last = now;
    lastWait = wait;
    ticks++;
  };
  const timer = setInterval(tick, 10);
  return {
    stop() {
      clearInterval(timer);
      tick();
      return { worstMs: worst, worstOwnMs: worstOwn, ticks };
    },
  };
}
