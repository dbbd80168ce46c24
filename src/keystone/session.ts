// One Keystone v3 identity: issues tokens (password, application credential, token) with POST
// /v3/auth/tokens over undici, caches the token and its catalog, issues a new one before the old one
// expires, and throws it away when a service answered 401 to it.
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request, type Dispatcher } from 'undici';
import { codeOf, SnapstoreError } from '../errors.js';
import { KeystoneError, scrub } from './errors.js';
import type { CatalogService, KeystoneAuthOptions } from './types.js';

const DEFAULT_TIMEOUT_MS = 10_000;
/** keystoneauth's stale duration: a token this close to its expiry is replaced before use. */
const MAX_RENEW_MARGIN_MS = 30_000;
/** Connection attempts before Keystone counts as unreachable (refused connections fail at once). */
const CONNECT_ATTEMPTS = 3;
/**
 * Failures after which asking for a token again is harmless: refused, reset, or closed without an answer
 * (a busy uwsgi does that). A token request has no effect but the token, so repeating it is safe.
 */
const RETRIED = new Set(['ECONNREFUSED', 'ECONNRESET', 'UND_ERR_SOCKET']);
const ERROR_BODY_LIMIT = 4096;

interface Issued {
  token: string;
  expiresAt: number;
  /** When to issue the next one: a third of the lifetime (at most 30 s) before expiry. */
  renewAt: number;
  catalog: CatalogService[];
}

export interface KeystoneSessionOptions {
  options: KeystoneAuthOptions;
  /** Where the credentials came from, for messages (`clouds.yaml cloud "prod" (/etc/openstack/clouds.yaml)`). */
  source: string;
  timeoutMs?: number;
  dispatcher?: Dispatcher;
}

type Method = 'password' | 'application_credential' | 'token';

export class KeystoneSession {
  readonly source: string;
  readonly authUrl: string;
  private readonly options: KeystoneAuthOptions;
  private readonly method: Method;
  private readonly timeoutMs: number;
  private readonly dispatcher: Dispatcher;
  private readonly ownDispatcher: Agent | undefined;
  private current: Issued | undefined;
  private issuing: Promise<Issued> | undefined;
  /** How many tokens this session has issued (for tests and `check`). */
  issuedCount = 0;

  constructor(opts: KeystoneSessionOptions) {
    this.source = opts.source;
    this.options = opts.options;
    this.method = methodOf(opts.options, opts.source);
    this.authUrl = v3Url(opts.options.authUrl, opts.source);
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (opts.dispatcher) {
      this.dispatcher = opts.dispatcher;
    } else {
      this.ownDispatcher = new Agent({ connect: { timeout: this.timeoutMs } });
      this.dispatcher = this.ownDispatcher;
    }
  }

  /** A valid token: the cached one unless it is near its expiry (then a new one). */
  async token(): Promise<string> {
    return (await this.issued()).token;
  }

  /** The catalog that came with the current token. */
  async catalog(): Promise<CatalogService[]> {
    return (await this.issued()).catalog;
  }

  /** Forgets `token` (a service answered 401 to it): the next token() issues a new one. */
  invalidate(token: string): void {
    if (this.current?.token === token) this.current = undefined;
  }

  async close(): Promise<void> {
    if (this.ownDispatcher && !this.ownDispatcher.closed) await this.ownDispatcher.close();
  }

  private async issued(): Promise<Issued> {
    const now = Date.now();
    if (this.current && now < this.current.renewAt) return this.current;
    this.issuing ??= this.issue().finally(() => {
      this.issuing = undefined;
    });
    this.current = await this.issuing;
    return this.current;
  }

  private secrets(): Array<string | undefined> {
    const o = this.options;
    return [o.password, o.applicationCredentialSecret, o.token, this.current?.token];
  }

  private async issue(): Promise<Issued> {
    const body = JSON.stringify(authBody(this.method, this.options));
    const res = await this.post(`${this.authUrl}/auth/tokens`, body);
    const text = await res.body.text().catch(() => '');
    if (res.statusCode >= 400) throw this.refusal(res.statusCode, text);
    const header = res.headers['x-subject-token'];
    const token = Array.isArray(header) ? header[0] : header;
    let parsed: { token?: { expires_at?: string; issued_at?: string; catalog?: unknown } } | undefined;
    try {
      parsed = JSON.parse(text) as typeof parsed;
    } catch {
      parsed = undefined;
    }
    const expiresAt = Date.parse(parsed?.token?.expires_at ?? '');
    if (!token || !parsed?.token || Number.isNaN(expiresAt)) {
      throw new KeystoneError('KEYSTONE_ERROR', `Keystone at ${this.authUrl} answered ${res.statusCode} without a token (credentials from ${this.source})`);
    }
    const issuedAt = Date.parse(parsed.token.issued_at ?? '') || Date.now();
    const margin = Math.min(MAX_RENEW_MARGIN_MS, Math.max(0, expiresAt - issuedAt) / 3);
    this.issuedCount++;
    return { token, expiresAt, renewAt: expiresAt - margin, catalog: parseCatalog(parsed.token.catalog) };
  }

  private async post(url: string, body: string): Promise<Dispatcher.ResponseData> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await request(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/json' },
          body,
          dispatcher: this.dispatcher,
          headersTimeout: this.timeoutMs,
          bodyTimeout: this.timeoutMs,
        });
      } catch (err) {
        if (attempt < CONNECT_ATTEMPTS && RETRIED.has(codeOf(err) ?? '')) {
          await sleep(250 * attempt);
          continue;
        }
        throw new KeystoneError(
          'KEYSTONE_UNREACHABLE',
          `Keystone at ${this.authUrl} could not be reached (${codeOf(err) ?? 'no answer'}; credentials from ${this.source})`,
          { cause: networkCause(err), context: { authUrl: this.authUrl, source: this.source } },
        );
      }
    }
  }

  private refusal(status: number, text: string): SnapstoreError {
    let message = '';
    try {
      message = String((JSON.parse(text) as { error?: { message?: unknown } }).error?.message ?? '');
    } catch {
      message = text.slice(0, ERROR_BODY_LIMIT);
    }
    message = scrub(message.replace(/\s+/g, ' ').trim(), this.secrets());
    const who = describeIdentity(this.method, this.options);
    const context = { authUrl: this.authUrl, source: this.source, status };
    if (status >= 500) {
      return new KeystoneError('KEYSTONE_ERROR', `Keystone at ${this.authUrl} failed with ${status} issuing a token for ${who} (credentials from ${this.source}): ${message}`, { context });
    }
    return new KeystoneError(
      'KEYSTONE_AUTH',
      `Keystone at ${this.authUrl} refused the credentials from ${this.source} (${who}): ${status} ${message}`,
      { context },
    );
  }
}

/** The network error's code and name only: undici's errors may carry the request (and its body). */
function networkCause(err: unknown): Error {
  const clean = new Error(err instanceof Error ? err.message : String(err));
  clean.name = err instanceof Error ? err.name : 'Error';
  const code = codeOf(err);
  if (code !== undefined) Object.assign(clean, { code });
  return clean;
}

function v3Url(authUrl: string | undefined, source: string): string {
  if (!authUrl || !/^https?:\/\/[^\s/]+/.test(authUrl)) {
    throw new SnapstoreError('KEYSTONE_NO_CREDENTIALS', `the credentials from ${source} have no usable auth_url (an http(s) URL of Keystone)`);
  }
  const base = authUrl.replace(/\/+$/, '');
  return /\/v3$/.test(base) ? base : `${base}/v3`;
}

function methodOf(o: KeystoneAuthOptions, source: string): Method {
  const type = (o.authType ?? '').toLowerCase().replace(/-/g, '_');
  if (type === '') {
    if (o.applicationCredentialSecret !== undefined) return 'application_credential';
    if (o.password === undefined && o.token !== undefined) return 'token';
    return 'password';
  }
  if (type === 'password' || type === 'v3password') return 'password';
  if (['v3applicationcredential', 'applicationcredential', 'v3_application_credential', 'application_credential'].includes(type)) {
    return 'application_credential';
  }
  if (type === 'token' || type === 'v3token') return 'token';
  throw new SnapstoreError(
    'CONFIG_INVALID',
    `auth_type "${o.authType}" from ${source} is not supported (password, v3password, v3applicationcredential, token, v3token)`,
  );
}

function domainOf(id: string | undefined, name: string | undefined, o: KeystoneAuthOptions): Record<string, string> {
  if (id) return { id };
  if (name) return { name };
  if (o.defaultDomainId) return { id: o.defaultDomainId };
  if (o.defaultDomainName) return { name: o.defaultDomainName };
  return { id: 'default' };
}

function scopeOf(o: KeystoneAuthOptions): Record<string, unknown> | undefined {
  if (o.projectId) return { project: { id: o.projectId } };
  if (o.projectName) return { project: { name: o.projectName, domain: domainOf(o.projectDomainId, o.projectDomainName, o) } };
  return undefined;
}

function userOf(o: KeystoneAuthOptions): Record<string, unknown> {
  if (o.userId) return { id: o.userId };
  return { name: o.username, domain: domainOf(o.userDomainId, o.userDomainName, o) };
}

/** The body of POST /v3/auth/tokens. Application credentials carry their own scope. */
export function authBody(method: Method, o: KeystoneAuthOptions): Record<string, unknown> {
  let identity: Record<string, unknown>;
  if (method === 'application_credential') {
    const cred: Record<string, unknown> = { secret: o.applicationCredentialSecret };
    if (o.applicationCredentialId) cred.id = o.applicationCredentialId;
    else Object.assign(cred, { name: o.applicationCredentialName, user: userOf(o) });
    return { auth: { identity: { methods: [method], application_credential: cred } } };
  }
  if (method === 'token') identity = { methods: ['token'], token: { id: o.token } };
  else identity = { methods: ['password'], password: { user: { ...userOf(o), password: o.password } } };
  const scope = scopeOf(o);
  return { auth: scope ? { identity, scope } : { identity } };
}

/** Who the credentials name, without any secret: `user "nova" in project "service"`. */
export function describeIdentity(method: Method, o: KeystoneAuthOptions): string {
  const project = o.projectId ? `project id ${o.projectId}` : o.projectName ? `project "${o.projectName}"` : 'no project scope';
  if (method === 'application_credential') {
    return `application credential ${o.applicationCredentialId ?? `"${o.applicationCredentialName ?? '?'}"`}`;
  }
  if (method === 'token') return `a token, ${project}`;
  const user = o.userId ? `user id ${o.userId}` : `user "${o.username ?? '?'}"`;
  return `${user}, ${project}`;
}

function parseCatalog(raw: unknown): CatalogService[] {
  if (!Array.isArray(raw)) return [];
  const services: CatalogService[] = [];
  for (const s of raw as Array<Record<string, unknown>>) {
    if (typeof s?.type !== 'string' || !Array.isArray(s.endpoints)) continue;
    const endpoints = (s.endpoints as Array<Record<string, unknown>>)
      .filter((e) => typeof e?.url === 'string' && typeof e.interface === 'string')
      .map((e) => {
        const region = typeof e.region_id === 'string' ? e.region_id : typeof e.region === 'string' ? e.region : undefined;
        return { interface: e.interface as string, url: e.url as string, ...(region ? { region } : {}) };
      });
    services.push({ type: s.type, ...(typeof s.name === 'string' ? { name: s.name } : {}), endpoints });
  }
  return services;
}
