// RbdStore against the common Store contract: on cluster a (clone v2 capable) and cluster b (clone v1
// only), as client.glance on the images pool, the way Glance's own rbd store runs.
import { RbdStore } from '../../src/drivers/rbd.js';
import { leftovers, testbed, type ClusterInfo } from '../support/testbed.js';
import { testStore } from './suite.js';

const env = testbed();

function rbdFactory(cluster: ClusterInfo) {
  return async () => ({
    store: new RbdStore({ confPath: cluster.conf, user: 'glance', pool: 'images', chunkSizeMiB: 1, connectTimeoutMs: 10_000 }),
    leftovers: async (marker: string) => {
      const found = await leftovers(cluster, 'images', marker);
      return [...found.images, ...found.snapshots, ...found.trash];
    },
  });
}

const capabilities = { readAccess: true, writeAccess: true, readRandom: true, canClone: true, thinProvisioning: true };

testStore('rbd cluster a (clone v2)', rbdFactory(env.clusters.a), { ...capabilities, chunkSize: 1024 * 1024 });
testStore('rbd cluster b (clone v1)', rbdFactory(env.clusters.b), { ...capabilities, chunkSize: 1024 * 1024 });
