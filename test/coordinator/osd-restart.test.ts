// A direct snapshot and a cross-cluster copy survive a restart of the target OSD: stopped mid-flatten (or
// mid-copy) for ~25 s (longer than a connect timeout of 5 s, as nova's rbd_connect_timeout often is),
// librados resends its ops once the OSD is back, and the snapshot finishes with the disk's content. Needs a
// bluestore OSD (memstore loses its data on restart): a cluster of this file's own, and a second (memstore)
// one as the copy's source.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, it } from 'vitest';
import type { ClusterInfo } from '../../scripts/testbed.mjs';
import { startCluster, stopCluster } from '../../scripts/testbed.mjs';
import { closeAdmins } from '../support/leftovers.js';
import { expectRidesOutRestart } from './helpers.js';

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
  it('a direct snapshot with a 5 s connect timeout rides out a 25 s outage mid-flatten and finishes with the content', async () => {
    await expectRidesOutRestart({ from: cluster, to: cluster, storeUser: 'nova', daemon: 'osd.0', step: 'flatten', method: 'direct', outageMs: OUTAGE_MS, dataMiB: 32, name: 'osd-restart-direct' });
  }, 180_000);

  it("a cross-cluster copy with a 5 s connect timeout rides out a 25 s outage of the target's OSD mid-copy and finishes with the content", async () => {
    // The target image's creation and every write of the copy go out while the OSD is down.
    await expectRidesOutRestart({ from: other, to: cluster, storeUser: 'glance', daemon: 'osd.0', step: 'copy', method: 'copy', outageMs: OUTAGE_MS, dataMiB: 16, name: 'osd-restart-copy' });
  }, 180_000);
});
