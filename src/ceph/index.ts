// The Ceph connection layer: connecting (ceph.conf + keyring), cluster identity, pool handles, and the typed
// errors a failed connection is reported with.
export { CEPH_DEFAULTS, CephCluster, CephClosed, CephUnavailable, loadNative, releaseMemory, type CephConnectOptions } from './cluster.js';
export type { Image, ImageStat, Ioctx, NativeCluster } from './cluster.js';
export { cephOption, findKeyring, isWellFormedKey, keySource, readCephConf } from './conf.js';
export { CephAuthError, CephConfigError, CephUnreachable, isCephConnectionError, type ConnectFacts, type KeySource } from './connect-errors.js';
