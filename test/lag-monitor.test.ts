// The lag monitor the native tests and the benchmarks use (scripts/lag-monitor.mjs): a JS thread held up by
// its own code shows in every figure; a stop of the whole machine (here: the process and its stall recorder
// both stopped by signal, the way a host throttling the VM stops every thread) shows as own lag, but not
// once the recorder's stalls are taken out.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { LagReport } from '../scripts/lag-monitor.mjs';

const monitorFile = join(dirname(fileURLToPath(import.meta.url)), '..', 'scripts', 'lag-monitor.mjs');
const dir = mkdtempSync(join(tmpdir(), 'snapstore-lag-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// A child process with a stall recorder and a monitor reading its log; it prints the recorder's pid once the
// monitor runs, then either blocks its JS thread for 80 ms or idles, and prints the monitor's report.
const child = (block: boolean, log: string) => `
import { lagMonitor, startStallRecorder } from ${JSON.stringify(monitorFile)};
const recorder = startStallRecorder(${JSON.stringify(log)});
await new Promise((r) => setTimeout(r, 500));
const monitor = lagMonitor({ stalls: ${JSON.stringify(log)} });
await new Promise((r) => setTimeout(r, 50));
console.log('recorder ' + recorder.pid);
await new Promise((r) => setTimeout(r, 300));
if (${block}) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 80);
await new Promise((r) => setTimeout(r, 700));
console.log('report ' + JSON.stringify(monitor.stop()));
recorder.stop();
`;

/** Runs the child; `onReady` gets its pid and the recorder's once the monitor runs. */
function runChild(block: boolean, onReady: (pid: number, recorder: number) => void): Promise<LagReport> {
  const log = join(dir, `stalls-${block ? 'block' : 'stop'}.log`);
  return new Promise((resolve, reject) => {
    const p = execFile(process.execPath, ['--input-type=module', '-e', child(block, log)], { timeout: 30_000 }, (err, stdout) => {
      if (err) return reject(err);
      const line = stdout.split('\n').find((l) => l.startsWith('report '));
      if (!line) return reject(new Error(`no report in ${stdout}`));
      resolve(JSON.parse(line.slice('report '.length)) as LagReport);
    });
    p.stdout?.on('data', (d: Buffer) => {
      const m = /recorder (\d+)/.exec(d.toString());
      if (m && p.pid) onReady(p.pid, Number(m[1]));
    });
  });
}

// Two processes' timers compared under whatever else the machine runs: on a loaded CI machine one run in
// a few misses the recorder's view of the stop (seen once: worstStallMs 1.8 ms), so each case gets retries.
describe('lag monitor with a stall recorder', { retry: 2 }, () => {
  it('keeps a JS thread blocked by its own code in every figure', async () => {
    const lag = await runChild(true, () => {});
    expect(lag.worstOwnMs).toBeGreaterThan(60);
    // The recorder was not held up by this process's blocked thread (a stop of the machine meanwhile would
    // take a little off).
    expect(lag.worstUnsharedMs).toBeGreaterThan(50);
  });

  it('takes a stop of the whole machine out of worstUnsharedMs only', async () => {
    const lag = await runChild(false, (pid, recorder) => {
      process.kill(pid, 'SIGSTOP');
      process.kill(recorder, 'SIGSTOP');
      setTimeout(() => {
        process.kill(recorder, 'SIGCONT');
        process.kill(pid, 'SIGCONT');
      }, 150);
    });
    // Stopped, the thread was not waiting on the run queue: the correction for that leaves the stop in.
    expect(lag.worstOwnMs).toBeGreaterThan(120);
    expect(lag.worstStallMs).toBeGreaterThan(120);
    // Well below the 150 ms stop, with room for a loaded CI machine.
    expect(lag.worstUnsharedMs).toBeLessThan(80);
  });
});
