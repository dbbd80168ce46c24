// The Store the copy path writes into, made from the target config. An RBD store shares the coordinator's
// connection to the target cluster (as the target user) rather than opening one more.
import type { CephCluster } from '../ceph/index.js';
import type { TargetConfig } from '../config/types.js';
import { storeFromConfig } from '../drivers/index.js';
import type { Store } from '../store.js';

export async function openTargetStore(target: TargetConfig, cluster: () => Promise<CephCluster>): Promise<Store> {
  return storeFromConfig(target, target.kind === 'rbd' ? await cluster() : undefined);
}
