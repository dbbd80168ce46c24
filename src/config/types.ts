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
  /** Keystone credentials read from nova.conf (`[glance]`, `[service_user]`); absent when there are none. */
  openstack?: OpenStackFileAuth;
  /** Multi-store backend id of glance-api.conf, also when Glance's endpoint comes from the catalog. */
  glanceStoreId?: string;
  /** Files that contributed, in merge order (for messages). */
  files: string[];
}

/**
 * keystoneauth options as an oslo.config section writes them (nova.conf `[glance]`, `[service_user]`), or
 * as clouds.yaml's `auth:` / the `OS_*` variables give them. Secrets stay in memory only: never logged.
 */
export interface KeystoneAuthOptions {
  /** `auth_type`: password / v3password, v3applicationcredential, token / v3token. */
  authType?: string;
  authUrl?: string;
  username?: string;
  userId?: string;
  password?: string;
  userDomainName?: string;
  userDomainId?: string;
  projectName?: string;
  projectId?: string;
  projectDomainName?: string;
  projectDomainId?: string;
  /** `default_domain_name` / `default_domain_id`: the user's and the project's domain when neither is given. */
  defaultDomainName?: string;
  defaultDomainId?: string;
  applicationCredentialId?: string;
  applicationCredentialName?: string;
  applicationCredentialSecret?: string;
  token?: string;
  regionName?: string;
  /** `valid_interfaces` (nova.conf) or `interface` (clouds.yaml, OS_INTERFACE), in order of preference. */
  interfaces?: string[];
  /** `service_type` of the image API in the catalog (default `image`). */
  serviceType?: string;
}

/** Where Glance's credentials come from in operators' files (nova.conf). */
export interface OpenStackFileAuth {
  /** nova.conf `[glance]` keystoneauth options, and the file that gave them. */
  glance?: { options: KeystoneAuthOptions; file: string };
  /** nova.conf `[service_user]`; `send` is its `send_service_user_token`. */
  serviceUser?: { options: KeystoneAuthOptions; file: string; send: boolean };
}
