// Linked snapshots and ceph-mgr's `rbd trash purge schedule`, on a cluster of its own with a real ceph-mgr
// (the shared test bed has none): when the image store's user may only read the disks' pool, `check`
// says whether a schedule on that pool will remove deleted disks whose last linked image is gone, or warns
// that only `snapstore gc` will.
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Reason } from '../../src/coordinator/index.js';
import { startMgrCluster, type MgrCluster } from '../support/mgr-cluster.js';
import { uniqueName } from '../support/testbed.js';
import { coordinator, makeDisk, rbdTarget } from './helpers.js';

const run = promisify(execFile);
let c: MgrCluster;
let novaConf = '';
const root = process.env.SNAPSTORE_TESTBED_ROOT ?? process.env.TMPDIR ?? '/tmp';

async function ceph(args: string[]): Promise<string> {
  return (await run('ceph', ['-c', c.conf, ...args])).stdout;
}

beforeAll(async () => {
  c = await startMgrCluster(join(root, `linked-mgr-cluster-${process.pid}`));
  // Glance's user reads the disks (linked images read through); nova may ask the mgr about its pool.
  await ceph(['auth', 'caps', 'client.glance', 'mon', 'profile rbd', 'osd', 'profile rbd pool=images, profile rbd-read-only pool=vms', 'mgr', 'profile rbd pool=images']);
  await ceph(['auth', 'caps', 'client.nova', 'mon', 'profile rbd', 'osd', 'profile rbd pool=vms, profile rbd pool=images', 'mgr', 'profile rbd pool=vms']);
  novaConf = `${c.conf}.nova-trash`;
  writeFileSync(novaConf, readFileSync(c.conf, 'utf8').replace('[client.nova]\n', '[client.nova]\nrbd_move_parent_to_trash_on_remove = true\n'));
}, 240_000);

afterAll(async () => {
  await c?.stop();
});

async function cleanupFinding(source: string): Promise<Reason | undefined> {
  const co = coordinator({ source: { confPath: novaConf, user: 'nova', pool: 'vms', connectTimeoutMs: 10_000 }, target: rbdTarget(c) });
  try {
    const plan = await co.check(source);
    expect(plan.linked?.possible).toBe(true);
    return plan.linked!.reasons.find((r) => r.code === 'LINKED_PARENT_CLEANUP');
  } finally {
    await co.close();
  }
}

describe('linked snapshots: who removes deleted disks when Glance may only read them', () => {
  it('without a purge schedule: a warning naming gc and the schedule as fixes; with one on the pool: covered', async () => {
    const source = await makeDisk(c, uniqueName('linked-mgr'), 16, 0);
    const bare = await cleanupFinding(source);
    expect(bare).toMatchObject({ ok: true, message: expect.stringMatching(/^warning: .*no ceph-mgr rbd trash purge schedule covers pool vms/) });
    expect(bare!.fix).toContain('rbd trash purge schedule add --pool vms');

    await run('rbd', ['-c', c.conf, 'trash', 'purge', 'schedule', 'add', '--pool', 'vms', '1h']);
    try {
      const covered = await cleanupFinding(source);
      expect(covered).toMatchObject({ ok: true, message: expect.stringContaining("ceph-mgr's rbd trash purge schedule covers pool vms every 1h") });
      expect(covered!.fix).toBeUndefined();
    } finally {
      await run('rbd', ['-c', c.conf, 'trash', 'purge', 'schedule', 'remove', '--pool', 'vms', '1h']);
    }
  });
});
