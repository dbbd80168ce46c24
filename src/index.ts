// snapstore's public API. Importing it never loads the native addon: only connecting to Ceph does.
export const VERSION = '0.1.0';

export { SnapstoreError, redactSecrets, type ErrorContext } from './errors.js';
export * from './store.js';
export * from './location.js';
export { FileStore, type FileStoreConfig } from './drivers/file/index.js';
export { RbdStore, RBD_SNAPSHOT, type RbdStoreConfig } from './drivers/rbd/index.js';
export { CephCluster, CephUnavailable, CephConfigError, CephAuthError, CephUnreachable, type CephConnectOptions } from './ceph/index.js';
export * from './coordinator/index.js';
export * from './glance/index.js';
export { OpenStackAuth, KeystoneError, KeystoneSession, resolveCredentials, type OpenStackAuthOptions, type GlanceEndpoint, type TokenProvider } from './keystone/index.js';
export { loadConfig } from './config/load.js';
export { ConfigError } from './config/ini.js';
export type * from './config/types.js';
