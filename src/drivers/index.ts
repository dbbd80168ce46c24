// A Store made from the target part of a SnapstoreConfig. The file driver never loads the native addon:
// the RBD driver is only imported when the config asks for it.
import type { CephCluster } from '../ceph/index.js';
import type { TargetConfig } from '../config/types.js';
import type { Store } from '../store.js';

export interface StoreFromConfigOptions {
  /**
   * RBD: a connection allowed to read the disks' pool, used to open clones whose parent lives there
   * (RbdStoreConfig.parentReader). Ignored by the file store.
   */
  parentReader?: CephCluster;
}

/** A store for `target`; an RBD store uses `cluster` when given (and then never closes it). */
export async function storeFromConfig(target: TargetConfig, cluster?: CephCluster, options: StoreFromConfigOptions = {}): Promise<Store> {
  if (target.kind === 'file') {
    const { FileStore } = await import('./file/index.js');
    return new FileStore({ dataDir: target.dataDir });
  }
  const { RbdStore } = await import('./rbd/index.js');
  return new RbdStore({
    confPath: target.confPath,
    user: target.user,
    pool: target.pool,
    ...(target.keyring ? { keyring: target.keyring } : {}),
    chunkSizeMiB: target.chunkSizeMiB,
    thinProvisioning: target.thinProvisioning,
    connectTimeoutMs: target.connectTimeoutMs,
    ...(cluster ? { cluster } : {}),
    ...(options.parentReader ? { parentReader: options.parentReader } : {}),
  });
}
