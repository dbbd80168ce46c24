// What snapstore needs to know about the deployment, as read from operators' nova.conf, glance-api.conf
// and ceph.conf (see ./load.ts) or given directly by an embedding service.

/** How to reach the Ceph cluster that holds instance disks (nova's `[libvirt] images_rbd_*`). */
export interface RbdSourceConfig {
  /** Path of the ceph.conf (`images_rbd_ceph_conf`). */
  confPath: string;
  /** cephx id without the `client.` prefix (`rbd_user`). */
  user: string;
  /** Explicit keyring path; by default the one ceph.conf names for `client.<user>`. */
  keyring?: string;
  /** Pool for sources given without one (`images_rbd_pool`). */
  pool: string;
  connectTimeoutMs: number;
}

export interface RbdTargetConfig {
  kind: 'rbd';
  confPath: string;
  user: string;
  keyring?: string;
  /** `rbd_store_pool`. */
  pool: string;
  /** `rbd_store_chunk_size`, MiB (object size of images written by the copy path). */
  chunkSizeMiB: number;
  /** `rbd_thin_provisioning`: skip zero chunks when writing. */
  thinProvisioning: boolean;
  connectTimeoutMs: number;
}

export interface FileTargetConfig {
  kind: 'file';
  /** `filesystem_store_datadir`. */
  dataDir: string;
}

export type TargetConfig = RbdTargetConfig | FileTargetConfig;

export interface GlanceConfig {
  /** Image API endpoint, e.g. `http://127.0.0.1:9292` (nova's `[glance] api_servers`, first entry). */
  endpoint: string;
  /** Static X-Auth-Token; never logged. */
  token?: string;
  /** Multi-store backend id when glance-api.conf uses `enabled_backends`. */
  storeId?: string;
}

export interface SnapstoreConfig {
  source?: RbdSourceConfig;
  target?: TargetConfig;
  glance?: GlanceConfig;
  /** Files that contributed, in merge order (for messages). */
  files: string[];
}
