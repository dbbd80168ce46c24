// A direct snapshot and a cross-cluster copy survive a restart of the mon: stopped for ~15 s (three times a
// 5 s connect timeout, as nova's rbd_connect_timeout often is) at a step that needs it — a snapshot takes
// its id from the mon — and started again; librados' mon client hunts until it is back, the ops resume,
// and the run finishes with the disk's content. The OSD (memstore) keeps running, so the mon alone restarts:
// clusters of this file's own.
import { describe, expect, it } from 'vitest';
import { withFaults, type FaultPoint, type StepName } from '../../src/coordinator/faults.js';
import { ownTestbed } from '../support/own-bed.js';
import { uniqueName, type ClusterInfo } from '../support/testbed.js';
import { coordinator, exportMd5, imageInfo, makeDisk, rbdTarget, removeImage, restartDaemon, sourceConfig } from './helpers.js';

const OUTAGE_MS = 15_000;
const env = ownTestbed();

/** Restarts `cluster`'s mon once, when the run reaches `step`. */
function outageAt(cluster: ClusterInfo, step: StepName) {
  const outage: { restarted: Promise<void> | null } = { restarted: null };
  const fault = (p: FaultPoint) => {
    if (p.step === step && p.when === 'before' && !outage.restarted) outage.restarted = restartDaemon(cluster, 'mon.a', OUTAGE_MS);
  };
  return { outage, fault };
}

describe('a mon restart mid-run', () => {
  it('a direct snapshot rides out the mon stopped at its snapshot step and finishes with the content', async () => {
    const a = env.clusters.a;
    const disk = uniqueName('mon-direct');
    const source = await makeDisk(a, disk, 64, 16);
    const before = await exportMd5(a, `vms/${disk}`);
    const { outage, fault } = outageAt(a, 'snap-create');
    const c = coordinator(
      withFaults({ source: { ...sourceConfig(a), connectTimeoutMs: 5000 }, target: { ...rbdTarget(a, 'nova'), connectTimeoutMs: 5000 } }, fault),
    );
    let id = '';
    try {
      const started = Date.now();
      const result = await c.snapshot(source, {});
      id = result.imageId;
      expect(result.method).toBe('direct');
      await outage.restarted;
      // It did wait for the mon: the outage was inside the run.
      expect(outage.restarted).not.toBeNull();
      expect(Date.now() - started).toBeGreaterThan(OUTAGE_MS);
      expect((await imageInfo(a, `images/${id}`)).parent).toBeUndefined();
      expect(await exportMd5(a, `images/${id}@snap`)).toBe(before);
    } finally {
      await outage.restarted?.catch(() => {});
      await c.close();
      if (id) await removeImage(a, `images/${id}`);
    }
  }, 180_000);

  it("a cross-cluster copy rides out the target cluster's mon stopped mid-copy and finishes with the content", async () => {
    const { a, b } = env.clusters;
    const disk = uniqueName('mon-copy');
    const source = await makeDisk(b, disk, 64, 16);
    const before = await exportMd5(b, `vms/${disk}`);
    // The copy creates the target, then the store's finalize takes its `snap`: a snapshot id from a's mon.
    const { outage, fault } = outageAt(a, 'copy');
    const c = coordinator(
      withFaults({ source: { ...sourceConfig(b), connectTimeoutMs: 5000 }, target: { ...rbdTarget(a), connectTimeoutMs: 5000 } }, fault),
    );
    let id = '';
    try {
      const started = Date.now();
      const result = await c.snapshot(source, {});
      id = result.imageId;
      expect(result.method).toBe('copy');
      await outage.restarted;
      expect(outage.restarted).not.toBeNull();
      expect(Date.now() - started).toBeGreaterThan(OUTAGE_MS);
      expect(await exportMd5(a, `images/${id}@snap`)).toBe(before);
    } finally {
      await outage.restarted?.catch(() => {});
      await c.close();
      if (id) await removeImage(a, `images/${id}`);
    }
  }, 180_000);
});
