// The Ceph connection layer: connecting (ceph.conf + keyring), cluster identity, pool handles.
export { CEPH_DEFAULTS, CephCluster, CephClosed, CephUnavailable, loadNative, releaseMemory, type CephConnectOptions } from './cluster.js';
export type { Image, ImageStat, Ioctx, NativeCluster } from './cluster.js';
export { CephConfigError, cephOption, findKeyring, readCephConf } from './conf.js';
