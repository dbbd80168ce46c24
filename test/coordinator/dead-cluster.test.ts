// A cluster stopped for good is bounded: with `rados_osd_op_timeout = 10` in the client's ceph.conf, a
// cross-cluster copy whose target cluster dies mid-copy, and a direct snapshot whose cluster dies
// mid-flatten, fail with CEPH_UNREACHABLE instead of waiting for ever (librbd waits to re-register a broken
// watch without end, see src/coordinator/stall.ts), and the copy leaves nothing on the live source side.
// Memstore clusters cannot come back: clusters of this file's own, stopped by the tests.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stopCluster } from '../../scripts/testbed.mjs';
import { withFaults, type FaultPoint, type StepName } from '../../src/coordinator/faults.js';
import { hasCode } from '../../src/errors.js';
import { closeAdmins, leftoversIn } from '../support/leftovers.js';
import { markStopped, ownTestbed } from '../support/own-bed.js';
import { uniqueName, type ClusterInfo } from '../support/testbed.js';
import { coordinator, makeDisk, rbdTarget, sourceConfig } from './helpers.js';

const BOUND_S = 10;
const env = ownTestbed();

/** A copy of the cluster's ceph.conf with the op bound set for every client. */
function boundedConf(cluster: ClusterInfo): string {
  const path = join(cluster.dir, `bounded-${BOUND_S}.conf`);
  writeFileSync(path, `${readFileSync(cluster.conf, 'utf8')}\n[client]\nrados_osd_op_timeout = ${BOUND_S}\nrados_mon_op_timeout = ${BOUND_S}\n`);
  return path;
}

/** Stops `cluster` for good when the run reaches `step` (`progress`: once data moves in it). */
function deathAt(cluster: ClusterInfo, step: StepName, when: FaultPoint['when'] = 'before') {
  return async (p: FaultPoint) => {
    if (p.step !== step || p.when !== when || stopped.has(cluster.conf)) return;
    stopped.add(cluster.conf);
    markStopped(cluster.conf);
    await closeAdmins([cluster.conf]);
    await stopCluster(cluster.dir);
  };
}
const stopped = new Set<string>();

/** Runs one snapshot; returns its error and how long it took. Closing waits at most a bound (dead cluster). */
async function runToFailure(opts: Parameters<typeof coordinator>[0], source: string, fault: (p: FaultPoint) => Promise<void>) {
  const c = coordinator(withFaults(opts, fault));
  const started = Date.now();
  const error = await c.snapshot(source, {}).then(
    () => null,
    (e: unknown) => e,
  );
  const ms = Date.now() - started;
  await Promise.race([c.close().catch(() => {}), new Promise((r) => setTimeout(r, BOUND_S * 1000).unref())]);
  return { error, ms };
}

describe('a cluster stopped for good', () => {
  // Writes to the dead target stall in librbd (no ETIMEDOUT reaches the copy): the stall bound ends them.
  it('a cross-cluster copy whose target dies mid-copy fails with CEPH_UNREACHABLE, the source side clean', async () => {
    const { a, b } = env.clusters;
    const disk = uniqueName('dead-copy');
    const source = await makeDisk(b, disk, 256, 128);
    const sourceSide = leftoversIn(() => ({ clusters: [b] }));
    const nothing = await sourceSide.snapshot();
    const out = await runToFailure(
      { source: { ...sourceConfig(b), confPath: boundedConf(b) }, target: { ...rbdTarget(a), confPath: boundedConf(a) } },
      source,
      deathAt(a, 'copy', 'progress'),
    );
    expect(hasCode(out.error, 'CEPH_UNREACHABLE'), String(out.error)).toBe(true);
    // It waited for the bound, and no more than a few bounds (the rollback's undo actions are bounded too).
    expect(out.ms).toBeGreaterThanOrEqual(BOUND_S * 1000);
    expect(out.ms).toBeLessThan(10 * BOUND_S * 1000);
    await sourceSide.expectUnchanged(nothing);
  }, 240_000);

  it('a direct snapshot whose cluster dies mid-flatten fails with CEPH_UNREACHABLE within a few bounds', async () => {
    const b = env.clusters.b;
    const disk = uniqueName('dead-direct');
    const source = await makeDisk(b, disk, 256, 128);
    const out = await runToFailure(
      { source: { ...sourceConfig(b), confPath: boundedConf(b) }, target: { ...rbdTarget(b), confPath: boundedConf(b) } },
      source,
      deathAt(b, 'flatten'),
    );
    expect(hasCode(out.error, 'CEPH_UNREACHABLE'), String(out.error)).toBe(true);
    expect(out.ms).toBeGreaterThanOrEqual(BOUND_S * 1000);
    expect(out.ms).toBeLessThan(10 * BOUND_S * 1000);
  }, 240_000);
});
