// The target config turned into what the coordinator uses: the Store (through the store factory) and, for a
// store in a Ceph cluster, a connection as the store's user — shared with the store rather than opening one
// more, and used by `check` to learn whether that user can read the disks (see instant.ts). This is the one
// place under coordinator/ that reads the target config; everything else asks the Store.
import { CephCluster } from '../ceph/index.js';
import type { TargetConfig } from '../config/types.js';
import { storeFromConfig } from '../drivers/index.js';
import type { Store } from '../store.js';

/** Connects as the store's user when the store lives in a Ceph cluster; null for any other store. */
export function connectStoreUser(target: TargetConfig): Promise<CephCluster> | null {
  switch (target.kind) {
    case 'rbd':
      return CephCluster.connect({
        confPath: target.confPath,
        user: target.user,
        ...(target.keyring ? { keyring: target.keyring } : {}),
        timeoutMs: target.connectTimeoutMs,
      });
    default:
      return null;
  }
}

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
