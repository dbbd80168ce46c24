// The HTTP under the Glance client: one request on undici with the tokens (user's, and the service token
// where asked for), retries where repeating cannot do harm, one re-issue of the token on a 401, and the
// mapping of every failure to a GlanceError with every token scrubbed from it.
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request, type Dispatcher } from 'undici';
import { codeOf, redactSecrets, SnapstoreError } from '../errors.js';
import {
  GlanceInvalidResponse,
  GlanceTokenUnavailable,
  bodyExcerpt,
  classifyNetworkError,
  errorForNetwork,
  errorForResponse,
  type GlanceErrorDetails,
} from './errors.js';
import type { GlanceClientOptions, GlanceTokenProvider, TokenSource } from './types.js';

const DEFAULT_TIMEOUT_MS = 60_000;
const DEFAULT_RETRIES = 2;
const DEFAULT_RETRY_DELAY_MS = 200;
const MAX_RETRY_DELAY_MS = 2_000;
/** Error bodies are read only this far: they are for a message, not for parsing. */
const ERROR_BODY_LIMIT = 16 * 1024;

export interface SendOptions {
  method: Dispatcher.HttpMethod;
  /** Below the endpoint, query string included. */
  path: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array | Readable | AsyncIterable<Uint8Array>;
  /** False for bodies that cannot be sent twice (streams). */
  retry?: boolean;
  signal?: AbortSignal;
  /** Send the provider's service token as X-Service-Token too (location registration, as nova does). */
  service?: boolean;
}

export interface Sent {
  res: Dispatcher.ResponseData;
  details: GlanceErrorDetails;
  /** The tokens sent (user's, service's): kept out of every error. */
  secrets: string[];
}

/**
 * Retries (with exponential backoff, at most `retries` times) only where repeating cannot do harm: GET and
 * HEAD on 5xx, timeouts and broken connections, and any method whose connection was refused before anything
 * was sent. Uploads are never retried. The token is sent as `X-Auth-Token` and kept out of every error.
 */
export class GlanceTransport {
  readonly endpoint: string;
  private readonly tokenSource: TokenSource | undefined;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly retryDelayMs: number;
  private readonly dispatcher: Dispatcher;
  private readonly ownDispatcher: Agent | undefined;

  constructor(options: GlanceClientOptions) {
    this.endpoint = options.endpoint.replace(/\/+$/, '').replace(/\/v2$/, '');
    this.tokenSource = options.token;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.retries = Math.max(0, options.retries ?? DEFAULT_RETRIES);
    this.retryDelayMs = options.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS;
    if (options.dispatcher) {
      this.dispatcher = options.dispatcher;
    } else {
      this.ownDispatcher = new Agent({ connect: { timeout: this.timeoutMs } });
      this.dispatcher = this.ownDispatcher;
    }
  }

  /** Closes the connection pool made here (not a dispatcher passed in). Safe to call twice. */
  async close(): Promise<void> {
    if (this.ownDispatcher && !this.ownDispatcher.closed) await this.ownDispatcher.close();
  }

  private provider(): GlanceTokenProvider | undefined {
    const source = this.tokenSource;
    return typeof source === 'object' ? source : undefined;
  }

  private async resolveToken(details: GlanceErrorDetails, service = false): Promise<string | undefined> {
    const source = this.tokenSource;
    if (source === undefined || typeof source === 'string') return service ? undefined : source;
    try {
      if (typeof source === 'function') return service ? undefined : await source();
      return service ? await source.serviceToken?.() : await source.token();
    } catch (err) {
      // A provider's own typed error (Keystone refused the credentials, is down, ...) says more than ours.
      if (err instanceof SnapstoreError) throw err;
      throw new GlanceTokenUnavailable(details, { cause: err });
    }
  }

  /** The request's headers: the caller's, the token, and the service token when asked for and given. */
  private async authHeaders(options: SendOptions, details: GlanceErrorDetails): Promise<{ headers: Record<string, string>; secrets: string[] }> {
    const headers: Record<string, string> = { accept: 'application/json', ...options.headers };
    const secrets: string[] = [];
    const token = await this.resolveToken(details);
    if (token !== undefined) {
      headers['x-auth-token'] = token;
      secrets.push(token);
    }
    const serviceToken = options.service ? await this.resolveToken(details, true) : undefined;
    if (serviceToken !== undefined) {
      headers['x-service-token'] = serviceToken;
      secrets.push(serviceToken);
    }
    return { headers, secrets };
  }

  async send(options: SendOptions): Promise<Sent> {
    const { method } = options;
    const idempotent = method === 'GET' || method === 'HEAD';
    const maxAttempts = options.retry === false ? 1 : this.retries + 1;
    const path = options.path.split('?', 1)[0] ?? options.path;
    // A 401 is answered once by a fresh token when the provider can invalidate and the body can be resent.
    const body = options.body;
    let reauth = this.provider()?.invalidate !== undefined && (body === undefined || typeof body === 'string' || body instanceof Uint8Array);
    for (let attempt = 1; ; attempt++) {
      const details: GlanceErrorDetails = { method, path, attempts: attempt };
      const { headers, secrets } = await this.authHeaders(options, details);
      let res: Dispatcher.ResponseData;
      try {
        res = await request(this.endpoint + options.path, {
          method,
          headers,
          body: body as Dispatcher.DispatchOptions['body'],
          dispatcher: this.dispatcher,
          headersTimeout: this.timeoutMs,
          bodyTimeout: this.timeoutMs,
          signal: options.signal,
        });
      } catch (err) {
        const failure = classifyNetworkError(err);
        const again = failure === 'refused' || (idempotent && (failure === 'broken' || failure === 'timeout'));
        if (again && attempt < maxAttempts) {
          await this.backoff(attempt, details, options.signal);
          continue;
        }
        throw errorForNetwork(details, scrubCause(err, secrets), 'request');
      }
      if (res.statusCode < 400) return { res, details, secrets };
      const text = await readLimited(res.body, ERROR_BODY_LIMIT);
      if (res.statusCode === 401 && reauth) {
        reauth = false;
        // Only the user's token is invalidated: it is the one keystonemiddleware answers 401 for expiry.
        if (headers['x-auth-token'] !== undefined) this.provider()?.invalidate?.(headers['x-auth-token']);
        attempt--;
        continue;
      }
      const error = errorForResponse({ ...details, status: res.statusCode, body: scrubText(bodyExcerpt(text), secrets) });
      if (idempotent && res.statusCode >= 500 && attempt < maxAttempts) {
        await this.backoff(attempt, details, options.signal);
        continue;
      }
      throw error;
    }
  }

  private async backoff(attempt: number, details: GlanceErrorDetails, signal: AbortSignal | undefined): Promise<void> {
    const delay = Math.min(this.retryDelayMs * 2 ** (attempt - 1), MAX_RETRY_DELAY_MS);
    try {
      // Jitter keeps several clients that lost the same server from coming back in step.
      await sleep(delay * (0.75 + Math.random() * 0.5), undefined, { signal });
    } catch (err) {
      throw errorForNetwork(details, err, 'backoff');
    }
  }

  async readJson<T>(sent: Sent): Promise<T> {
    let text: string;
    try {
      text = await sent.res.body.text();
    } catch (err) {
      throw errorForNetwork(sent.details, scrubCause(err, sent.secrets), 'response');
    }
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      throw new GlanceInvalidResponse({ ...sent.details, status: sent.res.statusCode }, 'body is not JSON', {
        cause: err,
      });
    }
  }
}

async function readLimited(body: Dispatcher.ResponseData['body'], limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      total += chunk.length;
      if (total >= limit) break;
    }
  } catch {
    // The status says enough; a body cut short only shortens the excerpt.
  } finally {
    if (!body.destroyed) body.destroy();
  }
  return Buffer.concat(chunks).subarray(0, limit).toString('utf8');
}

function scrubText(text: string, secrets: string[]): string {
  let withoutToken = text;
  for (const secret of secrets) if (secret) withoutToken = withoutToken.split(secret).join('[redacted]');
  return redactSecrets(withoutToken);
}

/** The cause as is, unless its text holds a token: then a plain Error with the same text, tokens removed. */
export function scrubCause(err: unknown, secrets: string[]): unknown {
  if (secrets.length === 0 || !(err instanceof Error)) return err;
  const leaks = [String(err), err.stack ?? '', safeJson(err)].some((t) => secrets.some((s) => s && t.includes(s)));
  if (!leaks) return err;
  // Only ever a `cause` inside a GlanceError: it keeps the name and code the network classification reads.
  const clean = new Error(scrubText(err.message, secrets));
  clean.name = err.name;
  const code = codeOf(err);
  if (code !== undefined) Object.assign(clean, { code });
  return clean;
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? '';
  } catch {
    return '';
  }
}
