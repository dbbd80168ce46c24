// The Store the copy path writes into, made from the target config. An RBD store shares the coordinator's
// connection to the target cluster (as the target user) rather than opening one more.
import type { CephCluster } from '../ceph/index.js';
import type { TargetConfig } from '../config/types.js';
import { FileStore } from '../drivers/file.js';
import { RbdStore } from '../drivers/rbd.js';
import type { Store } from '../store.js';

export async function openTargetStore(target: TargetConfig, cluster: () => Promise<CephCluster>): Promise<Store> {
  if (target.kind === 'file') return new FileStore({ dataDir: target.dataDir });
  return new RbdStore({
    confPath: target.confPath,
    user: target.user,
    pool: target.pool,
    ...(target.keyring ? { keyring: target.keyring } : {}),
    chunkSizeMiB: target.chunkSizeMiB,
    thinProvisioning: target.thinProvisioning,
    connectTimeoutMs: target.connectTimeoutMs,
    cluster: await cluster(),
  });
}
