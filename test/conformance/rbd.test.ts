// RbdStore against the common Store contract: on cluster a (clone v2 capable) and cluster b (clone v1
// only), as a user made like client.glance on a pool of this file's own, the way Glance's own rbd store
// runs. Clone formats matter only to delete; test/drivers/rbd.test.ts covers deleting with clone children
// of both formats.
import { RbdStore } from '../../src/drivers/rbd/index.js';
import { list } from '../support/leftovers.js';
import { ownPools } from '../support/own-pools.js';
import { testbed, type ClusterInfo } from '../support/testbed.js';
import { testStore } from './suite.js';

const env = testbed();
const pools = ownPools('conf-rbd');

function rbdFactory(cluster: ClusterInfo, chunkSizeMiB: number, thinProvisioning = true) {
  return async () => ({
    store: new RbdStore({ confPath: cluster.conf, ...pools.glance(cluster), pool: pools.images, chunkSizeMiB, thinProvisioning, connectTimeoutMs: 10_000 }),
    probe: () => list({ clusters: [cluster], pools: [pools.images] }),
  });
}

const capabilities = { readAccess: true, writeAccess: true, readRandom: true, canClone: true, thinProvisioning: true, schemes: ['rbd'] };

// Default 8 MiB objects (each written as 2 MiB pieces) on a; 1 MiB objects, one write each, on b.
testStore('rbd cluster a (clone v2)', rbdFactory(env.clusters.a, 8), { ...capabilities, chunkSize: 8 * 1024 * 1024 });
testStore('rbd cluster b (clone v1)', rbdFactory(env.clusters.b, 1), { ...capabilities, chunkSize: 1024 * 1024 });
// Thick provisioning (`rbd_thin_provisioning = False`): zeros, a sparse source's holes included, are written.
testStore('rbd cluster a thick', rbdFactory(env.clusters.a, 1, false), { ...capabilities, thinProvisioning: false, chunkSize: 1024 * 1024 });
