// A test bed of one test file's own: clusters `a` (clone format 2) and `b` (clone format 1) and, when
// asked, a glance-api on `a` — made by the same scripts as the shared test bed (same pools `vms`/`images`,
// same users nova, nova-ro, glance), started before the file's tests and stopped by PID after them. The
// leftovers probe compares whole clusters and Glance's whole image list, so a file that uses it must not
// share them with files running at the same time.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { startCluster, startGlance, stopCluster, stopGlance } from '../../scripts/testbed.mjs';
import { closeAdmins } from './leftovers.js';
import type { TestbedEnv } from './testbed.js';

/** ceph.conf paths of the clusters own beds have stopped: nothing may connect to them any more. */
const stopped = new Set<string>();

export function isStopped(conf: string): boolean {
  return stopped.has(conf);
}

/** A cluster stopped for good (a test stopped it, or a bed that stops clusters of its own, e.g.
 *  versions-bed.ts, did): observers and the disks' cleanup leave it alone. */
export function markStopped(conf: string): void {
  stopped.add(conf);
}

/**
 * Registers the hooks that start and stop this file's own test bed; returns its description, filled in
 * once beforeAll has run (read it inside tests and hooks, not at collection time).
 */
export function ownTestbed(opts: { glance?: boolean } = {}): TestbedEnv {
  const env = {} as TestbedEnv;
  // Under the shared test bed's directory when there is one (its TMPDIR): `down` stops what a cut-off
  // file left running, since startCluster/startGlance record what they start there.
  const root = mkdtempSync(join(tmpdir(), 'own-bed-'));
  const dirs = { a: join(root, 'cluster-a'), b: join(root, 'cluster-b'), glance: join(root, 'glance') };
  beforeAll(async () => {
    const [a, b] = await Promise.all([startCluster(dirs.a, { cloneV2: true }), startCluster(dirs.b)]);
    Object.assign(env, { root, clusters: { a, b } });
    if (opts.glance) env.glance = await startGlance(dirs.glance, a.dir);
  }, 240_000);
  afterAll(async () => {
    const confs = [join(dirs.a, 'ceph.conf'), join(dirs.b, 'ceph.conf')];
    for (const c of confs) markStopped(c);
    await closeAdmins(confs);
    if (opts.glance) await stopGlance(dirs.glance);
    await Promise.all([stopCluster(dirs.a), stopCluster(dirs.b)]);
    rmSync(root, { recursive: true, force: true });
  }, 120_000);
  return env;
}
