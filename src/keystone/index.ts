// The keystone layer: credentials from the sources OpenStack tools use, Keystone v3 tokens, the service
// catalog and service tokens. Below the Glance client; above nothing but errors and config.
export { OpenStackAuth, type GlanceEndpoint, type OpenStackAuthOptions } from './auth.js';
export { endpointFrom } from './catalog.js';
export { cloudOptions, loadCloud, searchPaths } from './clouds.js';
export { KeystoneError } from './errors.js';
export { KeystoneSession, type KeystoneSessionOptions } from './session.js';
export { envOptions, resolveCredentials, type CredentialSearch } from './sources.js';
export type { CatalogEndpoint, CatalogService, EndpointFilter, FoundCredentials, KeystoneAuthOptions, TokenProvider } from './types.js';
