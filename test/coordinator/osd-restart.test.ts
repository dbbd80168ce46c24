// A direct snapshot and a cross-cluster copy survive a restart of the target OSD: stopped mid-flatten (or
// mid-copy) for ~25 s (longer than a connect timeout of 5 s, as nova's rbd_connect_timeout often is),
// librados resends its ops once the OSD is back, and the snapshot finishes with the disk's content. Needs a
// bluestore OSD (memstore loses its data on restart): a cluster of this file's own, and a second (memstore)
// one as the copy's source.
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
let other: ClusterInfo;

beforeAll(async () => {
  [cluster, other] = await Promise.all([
    startCluster(join(root, 'cluster'), { bluestore: true, cloneV2: true }),
    startCluster(join(root, 'other'), {}),
  ]);
}, 240_000);

afterAll(async () => {
  await closeAdmins();
  if (cluster) await stopCluster(cluster.dir);
  if (other) await stopCluster(other.dir);
  rmSync(root, { recursive: true, force: true });
}, 120_000);

describe('an OSD restart mid-run', () => {
  // The disk's cluster, the store's, the user writing the store, and the step whose ops go out while the
  // target's OSD is down: the flatten (direct), or the target image's creation and every write (copy).
  const cases = [
    { method: 'direct', step: 'flatten', what: 'a direct snapshot', during: 'mid-flatten', from: () => cluster, storeUser: 'nova' },
    { method: 'copy', step: 'copy', what: 'a cross-cluster copy', during: "of the target's OSD mid-copy", from: () => other, storeUser: 'glance' },
  ] as const;
  for (const k of cases) {
    it(`${k.what} with a 5 s connect timeout rides out a 25 s outage ${k.during} and finishes with the content`, async () => {
      const src = k.from();
      const disk = uniqueName(`osd-restart-${k.method}`);
      const source = await makeDisk(src, disk, 64, k.method === 'direct' ? 32 : 16);
      const before = await exportMd5(src, `vms/${disk}`);
      const outage: { restarted: Promise<void> | null } = { restarted: null };
      const opts = withFaults(
        { source: { ...sourceConfig(src), connectTimeoutMs: 5000 }, target: { ...rbdTarget(cluster, k.storeUser), connectTimeoutMs: 5000 } },
        (p) => {
          if (p.step === k.step && p.when === 'before' && !outage.restarted) outage.restarted = restartDaemon(cluster, 'osd.0', OUTAGE_MS);
        },
      );
      const c = coordinator(opts);
      let id = '';
      try {
        const started = Date.now();
        const result = await c.snapshot(source, {});
        id = result.imageId;
        expect(result.method).toBe(k.method);
        await outage.restarted;
        expect(outage.restarted).not.toBeNull();
        // It did wait for the OSD: the outage was inside the run.
        expect(Date.now() - started).toBeGreaterThan(OUTAGE_MS);
        expect((await imageInfo(cluster, `images/${id}`)).parent).toBeUndefined();
        expect(await exportMd5(cluster, `images/${id}@snap`)).toBe(before);
      } finally {
        await outage.restarted?.catch(() => {});
        await c.close();
        if (id) await removeImage(cluster, `images/${id}`);
        if (src === other) await removeImage(other, `vms/${disk}`);
      }
    }, 180_000);
  }
});
