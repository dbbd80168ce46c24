// ceph-rbd-napi's mgrCommand / monCommand against the test bed's cluster, which runs no ceph-mgr: the
// monitors answer, a mgr command is bounded by timeoutMs (and the JS thread stays free meanwhile), and the
// guards. What a running mgr answers is tested in test/coordinator/mgr-flatten.test.ts, on a cluster
// with a mgr.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as rbd from 'ceph-rbd-napi';
import { testbed } from '../support/testbed.js';
import { connect, lagMonitor, within } from './helpers.js';

const A = testbed().clusters.a;
let cluster: rbd.Cluster;

beforeAll(async () => {
  cluster = await connect(A, 'glance');
});

afterAll(async () => {
  await cluster?.close();
});

describe('monCommand', () => {
  it("answers the monitors' JSON (ceph status: this cluster's fsid, no active mgr)", async () => {
    const { output, status } = await cluster.monCommand({ prefix: 'status', format: 'json' });
    const parsed = JSON.parse(output.toString('utf8')) as { fsid: string; mgrmap: { available: boolean } };
    expect(parsed.fsid).toBe(A.fsid);
    expect(parsed.mgrmap.available).toBe(false);
    expect(typeof status).toBe('string');
  });

  it('rejects an unknown command with the errno class and the monitors\' text', async () => {
    await expect(cluster.monCommand({ prefix: 'no such command' })).rejects.toMatchObject({ call: 'rados_mon_command', errno: 22 });
  });
});

describe('mgrCommand', () => {
  it('with no mgr answering rejects with TimeoutError after timeoutMs, without blocking the JS thread', async () => {
    const lag = lagMonitor();
    const started = performance.now();
    const err = await within(15_000, cluster.mgrCommand({ prefix: 'rbd task list' }, undefined, { timeoutMs: 1500 }).catch((e: unknown) => e), 'mgrCommand');
    const ms = performance.now() - started;
    const report = lag.stop();
    expect(err).toBeInstanceOf(rbd.TimeoutError);
    expect(err).toMatchObject({ call: 'rados_mgr_command', message: expect.stringContaining('no answer from ceph-mgr within 1500 ms') });
    expect(ms).toBeGreaterThanOrEqual(1400);
    // A blocked JS thread would have run the 10 ms timer about once in those 1.5 s.
    expect(report.ticks).toBeGreaterThan(20);
  });

  it('checks its arguments before anything reaches C, and refuses a closed cluster', async () => {
    await expect(cluster.mgrCommand('')).rejects.toBeInstanceOf(rbd.InvalidArgumentError);
    await expect(cluster.mgrCommand({ prefix: 'rbd task list' }, undefined, { timeoutMs: 0 })).rejects.toBeInstanceOf(rbd.InvalidArgumentError);
    await expect(cluster.mgrCommand({ prefix: 'rbd task list' }, 'text' as unknown as Buffer)).rejects.toBeInstanceOf(rbd.InvalidArgumentError);
    const other = await connect(A, 'glance');
    await other.close();
    await expect(other.mgrCommand({ prefix: 'rbd task list' })).rejects.toBeInstanceOf(rbd.ClosedError);
  });

  it('a connection closed while a mgr command waits closes once the command gave up', async () => {
    const other = await connect(A, 'glance');
    const pending = other.mgrCommand({ prefix: 'rbd task list' }, undefined, { timeoutMs: 1000 }).catch((e: unknown) => e);
    await within(10_000, other.close(), 'close');
    expect(await pending).toBeInstanceOf(rbd.TimeoutError);
  });
});
