// A cluster of its own with a ceph-mgr (scripts/ceph-cluster.sh --mgr) for the tests of background flattens
// through the mgr's rbd_support task queue; the shared test bed has no mgr. What it starts is recorded in
// the test bed's started.txt (the `cluster DIR` and `pid PID DIR` lines scripts/testbed.mjs reads), so
// `testbed.mjs down` stops it by PID even when the test file was cut off before its own cleanup.
import { execFile } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { freePort } from '../../scripts/testbed.mjs';
import type { ClusterInfo } from './testbed.js';

const run = promisify(execFile);
const script = join(resolve(dirname(fileURLToPath(import.meta.url)), '..', '..'), 'scripts', 'ceph-cluster.sh');

function record(line: string): void {
  const root = process.env.SNAPSTORE_TESTBED_ROOT;
  if (root && existsSync(root)) appendFileSync(join(root, 'started.txt'), `${line}\n`);
}

export interface MgrCluster extends ClusterInfo {
  /** The running mgr's PID (from its pid file). */
  mgrPid(): number;
  /** Kills the mgr with SIGKILL, by PID, and waits until it is gone. */
  killMgr(): Promise<void>;
  /** Starts mgr.x again and waits until rbd_support answers. */
  startMgr(): Promise<void>;
  stop(): Promise<void>;
}

function recordPids(dir: string): void {
  for (const f of ['mon.a', 'osd.0', 'mgr.x']) {
    const file = join(dir, 'run', `${f}.pid`);
    if (existsSync(file)) record(`pid ${readFileSync(file, 'utf8').trim()} ${dir}`);
  }
}

export async function startMgrCluster(dir: string): Promise<MgrCluster> {
  dir = resolve(dir);
  rmSync(dir, { recursive: true, force: true });
  record(`cluster ${dir}`);
  const port = await freePort();
  let stdout: string;
  try {
    ({ stdout } = await run('bash', [script, 'start', dir, String(port), '--clone-v2', '--mgr'], { timeout: 180_000 }));
  } finally {
    recordPids(dir);
  }
  const env = Object.fromEntries(stdout.split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  const pidFile = join(dir, 'run', 'mgr.x.pid');
  const mgrPid = () => Number(readFileSync(pidFile, 'utf8').trim());
  return {
    dir,
    conf: env.conf ?? join(dir, 'ceph.conf'),
    fsid: env.fsid ?? '',
    port,
    cloneFormat: 2,
    mgrPid,
    async killMgr() {
      const pid = mgrPid();
      process.kill(pid, 'SIGKILL');
      for (let i = 0; i < 200 && existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z'); i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async startMgr() {
      await run('bash', [script, 'start-mgr', dir], { timeout: 120_000 });
      recordPids(dir);
    },
    async stop() {
      await run('bash', [script, 'stop', dir], { timeout: 60_000 });
    },
  };
}
