// What the public calls take and resolve with (beyond the classes themselves).
import type { FeatureName } from './features.js';

export interface ConnectOptions {
  /** Path of ceph.conf (mon host, and usually `keyring` per client section). */
  confPath: string;
  /** cephx id without the "client." prefix. Default "admin". */
  user?: string | undefined;
  /** Keyring path, set as the `keyring` option; otherwise ceph.conf decides. */
  keyring?: string | undefined;
  /**
   * Default 10000. Rounded up to whole seconds and set as client_mount_timeout: connecting to monitors
   * that do not answer fails with {@link TimeoutError} after about this long. It bounds connecting only.
   */
  timeoutMs?: number | undefined;
  /**
   * Default 300000 (0: no bound, Ceph's own default). Rounded up to whole seconds and set as
   * rados_osd_op_timeout and rados_mon_op_timeout: a single RADOS op fails with {@link TimeoutError}
   * after about this long. Generous on purpose: librados resends an op across an OSD failover
   * (osd_heartbeat_grace 20 s plus detection) or a mon election, which a short bound would turn into a
   * failure; the bound only keeps a call from hanging for ever on a cluster that is gone.
   */
  opTimeoutMs?: number | undefined;
  /**
   * Further Ceph options, set with rados_conf_set after ceph.conf is read (so they win over it), e.g.
   * `{ rbd_concurrent_management_ops: 4 }`. An unknown option fails the connect with NotFoundError
   * naming it (call `rados_conf_set <name>`).
   */
  config?: Record<string, string | number | boolean> | undefined;
}

/** Feature bits, or names such as 'layering', 'deep-flatten', 'exclusive-lock', 'object-map', 'fast-diff'. */
export type Features = bigint | ReadonlyArray<FeatureName | (string & {})>;

export interface CreateImageOptions {
  /** Default: the cluster's `rbd default features`. */
  features?: Features | undefined;
  /** Object size as a power of two (22 = 4 MiB). */
  order?: number | undefined;
  /** Separate data pool (erasure-coded pools). */
  dataPool?: string | undefined;
  stripeUnit?: bigint | undefined;
  stripeCount?: bigint | undefined;
}

export interface CloneOptions {
  /** RBD_IMAGE_OPTION_CLONE_FORMAT: 1 needs a protected snapshot; 2 needs `require-min-compat-client mimic`. Default: librbd decides. */
  format?: 1 | 2 | undefined;
  features?: Features | undefined;
  order?: number | undefined;
}

export interface OpenImageOptions {
  readOnly?: boolean | undefined;
  snapshot?: string | null | undefined;
}

export interface DiffIterateOptions {
  fromSnapshot?: string | null | undefined;
  offset?: number | undefined;
  length?: number | undefined;
  wholeObject?: boolean | undefined;
}

export interface TrashEntry {
  id: string;
  name: string;
  /** 'user' | 'mirroring' | 'migration' | 'removing' | 'user_parent' */
  source: string;
  deletionTime: Date;
  defermentEndTime: Date;
}

export interface ImageStat {
  size: number;
  objectSize: number;
  numObjects: number;
  order: number;
  features: bigint;
  /** `features` as names, e.g. ['layering', 'deep-flatten']. */
  featureNames: string[];
  parent: ParentInfo | null;
}

export interface ParentInfo {
  pool: string;
  namespace: string;
  image: string;
  imageId: string;
  snapshot: string;
  snapId: bigint;
  /** The parent image is in the trash. */
  trash: boolean;
}

export interface SnapInfo {
  id: bigint;
  /** For trash-namespace snapshots librbd's generated name; see originalName. */
  name: string;
  size: number;
  /** 'trash': removed while clone-v2 children still use it. */
  namespace: 'user' | 'group' | 'trash' | 'mirror' | 'unknown';
  /** For trash-namespace snapshots: the name the snapshot had. */
  originalName?: string;
  timestamp?: Date;
}

export interface Extent {
  offset: number;
  length: number;
  /** false: known to be zeros (a hole / discarded). */
  exists: boolean;
}

export interface ChildInfo {
  pool: string;
  namespace: string;
  image: string;
  imageId: string;
  trash: boolean;
}

export interface LockerInfo {
  /** e.g. "client.4123" */
  client: string;
  cookie: string;
  address: string;
  exclusive: boolean;
}
