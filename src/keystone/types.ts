// What the keystone layer gives its users: a token provider (the Glance client's notion of auth), and
// where the credentials came from.
import type { KeystoneAuthOptions } from '../config/types.js';

export type { KeystoneAuthOptions } from '../config/types.js';

/**
 * Anything that hands out tokens: the Glance client calls `token()` before each request, `invalidate()`
 * with the token Glance answered 401 to (then asks again, once), and `serviceToken()` for the calls that
 * carry an `X-Service-Token` (location registration).
 */
export interface TokenProvider {
  token(): Promise<string> | string;
  invalidate?(token: string): void;
  serviceToken?(): Promise<string | undefined> | string | undefined;
}

/** Which catalog endpoint is Glance's: service type, interfaces in order of preference, region. */
export interface EndpointFilter {
  serviceType: string;
  interfaces: string[];
  region?: string;
}

/** Credentials found by {@link resolveCredentials}: Keystone options, a provider, or a static token. */
export type FoundCredentials =
  | { kind: 'keystone'; source: string; options: KeystoneAuthOptions; filter: EndpointFilter }
  | { kind: 'provider'; source: string; provider: TokenProvider; filter: EndpointFilter }
  | { kind: 'static'; source: string; token: string; filter: EndpointFilter };

export interface CatalogEndpoint {
  interface: string;
  region?: string;
  url: string;
}

export interface CatalogService {
  type: string;
  name?: string;
  endpoints: CatalogEndpoint[];
}
