// Time-to-flattened of an instant snapshot (`--flatten background`), side by side in one run: flattened by
// ceph-mgr's rbd_support task queue (the store's user has the mgr cap) and by snapstore's flattener (the
// fallback: a user without it, then `Flattener.runOnce`). Measured from the moment the snapshot returned
// (usable) to the moment the clone has no parent. Starts and stops its own cluster with a mgr
// (scripts/ceph-cluster.sh --mgr); a 1 GiB disk with 256 MiB written, alternating the two ways, 3 runs each.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, type ClusterInfo } from '../scripts/testbed.mjs';
import { Flattener, SnapshotCoordinator } from '../src/coordinator/index.js';
import type { RbdSourceConfig, RbdTargetConfig } from '../src/config/types.js';
import { median, printTable, rbd, repoRoot, saveJson, timed } from './lib.js';

const run = promisify(execFile);
const RUNS = 3;
const script = join(repoRoot, 'scripts', 'ceph-cluster.sh');

async function startMgrCluster(dir: string): Promise<ClusterInfo> {
  const port = await freePort();
  const { stdout } = await run('bash', [script, 'start', dir, String(port), '--clone-v2', '--stock-features', '--mgr'], { timeout: 180_000 });
  const env = Object.fromEntries(stdout.split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  return { dir, conf: env.conf ?? join(dir, 'ceph.conf'), fsid: env.fsid ?? '', port, cloneFormat: 2 };
}

const source = (c: ClusterInfo): RbdSourceConfig => ({ confPath: c.conf, user: 'nova', pool: 'vms', connectTimeoutMs: 10_000 });
const target = (c: ClusterInfo, user: string): RbdTargetConfig => ({
  kind: 'rbd',
  confPath: c.conf,
  user,
  pool: 'images',
  chunkSizeMiB: 8,
  thinProvisioning: true,
  connectTimeoutMs: 10_000,
});

async function hasParent(c: ClusterInfo, id: string): Promise<boolean> {
  return 'parent' in (JSON.parse(await rbd(c, ['info', `images/${id}`, '--format', 'json'])) as object);
}

/** Seconds from the snapshot's return to a flattened clone, with the mgr doing the flatten. */
async function throughMgr(c: ClusterInfo, disk: string): Promise<[number, string]> {
  const co = new SnapshotCoordinator({ source: source(c), target: target(c, 'glance') });
  const result = await co.snapshot(`rbd://${c.fsid}/vms/${disk}`, { flatten: 'background' }).finally(() => co.close());
  if (result.flatten !== 'queued') throw new Error(`expected the mgr to take the flatten: ${result.flattenerReason ?? result.flatten}`);
  const [s] = await timed(async () => {
    while (await hasParent(c, result.imageId)) await new Promise((r) => setTimeout(r, 100));
  });
  return [s, result.imageId];
}

/** The same with snapstore's flattener (started as soon as the snapshot returned). */
async function throughFlattener(c: ClusterInfo, disk: string): Promise<[number, string]> {
  const co = new SnapshotCoordinator({ source: source(c), target: target(c, 'glance-nomgr') });
  const result = await co.snapshot(`rbd://${c.fsid}/vms/${disk}`, { flatten: 'background' }).finally(() => co.close());
  if (result.flatten !== 'pending') throw new Error('expected the flattener fallback');
  const [s] = await timed(async () => {
    const f = new Flattener({ source: source(c), target: { pool: 'images' }, images: [result.imageId] });
    try {
      const report = await f.runOnce();
      if (report.flattened.length !== 1) throw new Error(`flattener did not flatten: ${JSON.stringify(report)}`);
    } finally {
      await f.close();
    }
  });
  return [s, result.imageId];
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'snapstore-bench-mgr-'));
  const c = await startMgrCluster(dir);
  try {
    const osd = 'profile rbd pool=images, profile rbd-read-only pool=vms';
    await run('ceph', ['-c', c.conf, 'auth', 'caps', 'client.glance', 'mon', 'profile rbd', 'osd', osd, 'mgr', 'profile rbd pool=images']);
    await run('ceph', ['-c', c.conf, 'auth', 'caps', 'client.glance-nomgr', 'mon', 'profile rbd', 'osd', osd]);
    await rbd(c, ['create', 'vms/disk', '--size', '1G'], 'nova');
    await rbd(c, ['bench', '--io-type', 'write', '--io-size', '4M', '--io-total', '256M', '--io-pattern', 'rand', 'vms/disk'], 'nova');
    const mgr: number[] = [];
    const flattener: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      // Alternating which goes first, so neither always runs on a warmer cluster.
      for (const way of i % 2 ? (['flattener', 'mgr'] as const) : (['mgr', 'flattener'] as const)) {
        const [s, id] = way === 'mgr' ? await throughMgr(c, 'disk') : await throughFlattener(c, 'disk');
        (way === 'mgr' ? mgr : flattener).push(s);
        await rbd(c, ['snap', 'unprotect', `images/${id}@snap`]);
        await rbd(c, ['snap', 'purge', `images/${id}`]);
        await rbd(c, ['rm', '--no-progress', `images/${id}`]);
      }
    }
    const m = median(mgr);
    const f = median(flattener);
    printTable('instant snapshot of a 1 GiB disk (256 MiB written): seconds from usable to flattened', [
      { measure: 'time-to-flattened, median s', 'ceph-mgr task queue': m, "snapstore's flattener": f, ratio: `${(m / f).toFixed(2)}x` },
      { measure: 'runs, s', 'ceph-mgr task queue': mgr.map((x) => x.toFixed(2)).join(' '), "snapstore's flattener": flattener.map((x) => x.toFixed(2)).join(' '), ratio: '-' },
    ]);
    saveJson('mgr-flatten', { runs: RUNS, mgr, flattener, medianMgr: m, medianFlattener: f });
  } finally {
    await run('bash', [script, 'stop', dir], { timeout: 60_000 });
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
