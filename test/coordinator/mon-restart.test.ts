// A direct snapshot and a cross-cluster copy survive a restart of the mon: stopped for ~15 s (three times a
// 5 s connect timeout, as nova's rbd_connect_timeout often is) at a step that needs it — a snapshot takes
// its id from the mon — and started again; librados' mon client hunts until it is back, the ops resume,
// and the run finishes with the disk's content. The OSD (memstore) keeps running, so the mon alone restarts:
// clusters of this file's own.
import { describe, it } from 'vitest';
import { ownTestbed } from '../support/own-bed.js';
import { expectRidesOutRestart } from './helpers.js';

const OUTAGE_MS = 15_000;
const env = ownTestbed();

describe('a mon restart mid-run', () => {
  it('a direct snapshot rides out the mon stopped at its snapshot step and finishes with the content', async () => {
    const a = env.clusters.a;
    await expectRidesOutRestart({ from: a, to: a, storeUser: 'nova', daemon: 'mon.a', step: 'snap-create', method: 'direct', outageMs: OUTAGE_MS, dataMiB: 16, name: 'mon-direct' });
  }, 180_000);

  it("a cross-cluster copy rides out the target cluster's mon stopped mid-copy and finishes with the content", async () => {
    const { a, b } = env.clusters;
    // The copy creates the target, then the store's finalize takes its `snap`: a snapshot id from a's mon.
    await expectRidesOutRestart({ from: b, to: a, storeUser: 'glance', daemon: 'mon.a', step: 'copy', method: 'copy', outageMs: OUTAGE_MS, dataMiB: 16, name: 'mon-copy' });
  }, 180_000);
});
