// A direct snapshot survives a restart of the target OSD: stopped mid-flatten for ~25 s (longer than a
// connect timeout of 5 s, as nova's rbd_connect_timeout often is), librados resends its ops once the OSD is
// back, and the snapshot finishes with the disk's content. Needs a bluestore OSD (memstore loses its data on
// restart): a cluster of this file's own.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClusterInfo } from '../../scripts/testbed.mjs';
import { startCluster, stopCluster } from '../../scripts/testbed.mjs';
import { withFaults } from '../../src/coordinator/faults.js';
import { closeAdmins } from '../support/leftovers.js';
import { uniqueName } from '../support/testbed.js';
import { coordinator, exportMd5, imageInfo, makeDisk, rbdTarget, removeImage, restartDaemon, sourceConfig } from './helpers.js';

const OUTAGE_MS = 25_000;
const root = mkdtempSync(join(tmpdir(), 'osd-restart-'));
let cluster: ClusterInfo;

beforeAll(async () => {
  cluster = await startCluster(join(root, 'cluster'), { bluestore: true, cloneV2: true });
}, 240_000);

afterAll(async () => {
  await closeAdmins();
  if (cluster) await stopCluster(cluster.dir);
  rmSync(root, { recursive: true, force: true });
}, 120_000);

describe('an OSD restart mid-run', () => {
  it('a direct snapshot with a 5 s connect timeout rides out a 25 s OSD outage mid-flatten and finishes with the content', async () => {
    const disk = uniqueName('osd-restart');
    const source = await makeDisk(cluster, disk, 64, 32);
    const before = await exportMd5(cluster, `vms/${disk}`);
    const outage: { restarted: Promise<void> | null } = { restarted: null };
    const opts = withFaults(
      { source: { ...sourceConfig(cluster), connectTimeoutMs: 5000 }, target: { ...rbdTarget(cluster, 'nova'), connectTimeoutMs: 5000 } },
      (p) => {
        // The flatten's ops go out while the OSD is down.
        if (p.step === 'flatten' && p.when === 'before' && !outage.restarted) outage.restarted = restartDaemon(cluster, 'osd.0', OUTAGE_MS);
      },
    );
    const c = coordinator(opts);
    let id = '';
    try {
      const started = Date.now();
      const result = await c.snapshot(source, {});
      id = result.imageId;
      expect(result.method).toBe('direct');
      await outage.restarted;
      // It did wait for the OSD: the outage was inside the run.
      expect(Date.now() - started).toBeGreaterThan(OUTAGE_MS);
      expect((await imageInfo(cluster, `images/${id}`)).parent).toBeUndefined();
      expect(await exportMd5(cluster, `images/${id}@snap`)).toBe(before);
    } finally {
      await outage.restarted?.catch(() => {});
      await c.close();
      if (id) await removeImage(cluster, `images/${id}`);
    }
  }, 180_000);
});
