// The target config turned into what the coordinator uses, through the store factory (src/drivers/index.ts,
// the one place that knows which driver a config names): the Store and, for a store in a Ceph cluster, a
// connection as the store's user — shared with the store rather than opening one more, and used by `check`
// to learn whether that user can read the disks (see instant.ts). Everything else asks the Store.
import type { CephCluster } from '../ceph/index.js';
import type { TargetConfig } from '../config/types.js';
import { storeFromConfig } from '../drivers/index.js';

export { connectStoreUser } from '../drivers/index.js';
import type { Store } from '../store.js';

/**
 * The store for `target`. `parentReader` (the disks' session) lets an RBD store open clones whose parent
 * lives in the disks' pool; the store ignores it when it is another cluster.
 */
export async function openTargetStore(
  target: TargetConfig,
  storeUser: Promise<CephCluster | null>,
  parentReader: CephCluster | undefined,
): Promise<Store> {
  return storeFromConfig(target, (await storeUser) ?? undefined, parentReader ? { parentReader } : {});
}
