// OpenStackAuth: what the Glance client and the CLI use. It finds the credentials (./sources.ts), keeps a
// Keystone session for them (and one for the service user when service tokens are asked for), answers the
// Glance client's token calls, and finds Glance's endpoint in the catalog when none is configured.
import type { Dispatcher } from 'undici';
import { SnapstoreError } from '../errors.js';
import { endpointFrom } from './catalog.js';
import { KeystoneSession } from './session.js';
import { resolveCredentials, type CredentialSearch } from './sources.js';
import type { EndpointFilter, FoundCredentials, KeystoneAuthOptions, TokenProvider } from './types.js';

export interface OpenStackAuthOptions extends CredentialSearch {
  /** Credentials (or a provider) for the service token; default nova.conf `[service_user]`. */
  serviceAuth?: KeystoneAuthOptions | TokenProvider;
  /** Send `X-Service-Token` with location calls; default `[service_user] send_service_user_token`. */
  sendServiceToken?: boolean;
  /** Bound on each Keystone request (connect, headers, body); default 10 s. */
  timeoutMs?: number;
  dispatcher?: Dispatcher;
}

export interface GlanceEndpoint {
  url: string;
  /** `configured` ([glance] api_servers / endpoint_override or the caller) or `catalog`. */
  from: 'configured' | 'catalog';
}

function sessionFor(found: FoundCredentials, opts: OpenStackAuthOptions): KeystoneSession | null {
  if (found.kind !== 'keystone') return null;
  return new KeystoneSession({
    options: found.options,
    source: found.source,
    ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
    ...(opts.dispatcher ? { dispatcher: opts.dispatcher } : {}),
  });
}

/** The service user's provider: a library provider, or a Keystone session on its options. */
function serviceProvider(opts: OpenStackAuthOptions): { source: string; provider: TokenProvider & { close?(): Promise<void> } } | null {
  const send = opts.sendServiceToken ?? opts.files?.serviceUser?.send ?? false;
  if (!send) return null;
  if (opts.serviceAuth && typeof (opts.serviceAuth as TokenProvider).token === 'function') {
    return { source: 'the library option (serviceAuth)', provider: opts.serviceAuth as TokenProvider };
  }
  const fromLibrary = opts.serviceAuth as KeystoneAuthOptions | undefined;
  const nova = opts.files?.serviceUser;
  const options = fromLibrary ?? (nova && Object.keys(nova.options).length > 0 ? nova.options : undefined);
  if (!options) {
    throw new SnapstoreError(
      'KEYSTONE_NO_CREDENTIALS',
      `service tokens are asked for${nova ? ` (send_service_user_token in [service_user] of ${nova.file})` : ''} but no service user is configured ([service_user] auth_type, auth_url, username, password, ...)`,
    );
  }
  const source = fromLibrary ? 'the library option (serviceAuth)' : `[service_user] of ${nova?.file ?? '?'}`;
  const session = new KeystoneSession({
    options,
    source,
    ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
    ...(opts.dispatcher ? { dispatcher: opts.dispatcher } : {}),
  });
  return { source, provider: session };
}

export class OpenStackAuth implements TokenProvider {
  /** Where the credentials came from, e.g. `clouds.yaml cloud "prod" (/etc/openstack/clouds.yaml)`. */
  readonly source: string;
  /** Where the service token's credentials came from, or null when none is sent. */
  readonly serviceSource: string | null;
  readonly filter: EndpointFilter;
  private readonly found: FoundCredentials;
  private readonly session: KeystoneSession | null;
  private readonly service: (TokenProvider & { close?(): Promise<void> }) | null;

  private constructor(found: FoundCredentials, opts: OpenStackAuthOptions) {
    this.found = found;
    this.source = found.source;
    this.filter = found.filter;
    this.session = sessionFor(found, opts);
    const service = serviceProvider(opts);
    this.service = service?.provider ?? null;
    this.serviceSource = service?.source ?? null;
  }

  /** Credentials from the first source that has some (see ./sources.ts), or null when none has. */
  static resolve(opts: OpenStackAuthOptions = {}): OpenStackAuth | null {
    const found = resolveCredentials(opts);
    return found ? new OpenStackAuth(found, opts) : null;
  }

  /** Tokens issued so far by this process's Keystone session (0 for a fixed token or a provider). */
  get issuedCount(): number {
    return this.session?.issuedCount ?? 0;
  }

  /** Whether the credentials go to Keystone (and so come with a service catalog). */
  get hasCatalog(): boolean {
    return this.session !== null;
  }

  async token(): Promise<string> {
    if (this.session) return this.session.token();
    const found = this.found;
    return found.kind === 'provider' ? found.provider.token() : found.kind === 'static' ? found.token : '';
  }

  invalidate(token: string): void {
    this.session?.invalidate(token);
    if (this.found.kind === 'provider') this.found.provider.invalidate?.(token);
  }

  async serviceToken(): Promise<string | undefined> {
    return this.service ? this.service.token() : undefined;
  }

  /** Glance's endpoint: `configured` when given, else the catalog's (KEYSTONE_NO_ENDPOINT when it has none). */
  async glanceEndpoint(configured?: string): Promise<GlanceEndpoint> {
    if (configured) return { url: configured, from: 'configured' };
    if (!this.session) {
      throw new SnapstoreError(
        'NOT_CONFIGURED',
        `Glance's endpoint is not configured and ${this.source} gives no service catalog: set [glance] api_servers, or give Keystone credentials (OS_AUTH_URL, OS_CLOUD, nova.conf [glance] auth_url)`,
      );
    }
    return { url: endpointFrom(await this.session.catalog(), this.filter, this.source), from: 'catalog' };
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.session?.close(), this.service?.close?.()]);
  }
}
