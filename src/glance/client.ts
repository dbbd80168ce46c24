// GlanceClient: the OpenStack Image API v2 over undici, for what snapstore needs — create/get/list/update/
// delete images, upload and download data as streams, and register locations with whichever locations API
// the server has (PATCH `/locations/-` up to image API 2.16, `POST /v2/images/{id}/locations` from 2.17).
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request, type Dispatcher } from 'undici';
import { codeOf, redactSecrets, SnapstoreError } from '../errors.js';
import {
  GlanceBadRequest,
  GlanceConflict,
  GlanceError,
  GlanceForbidden,
  GlanceInvalidResponse,
  GlanceNoData,
  GlanceRangeNotSupported,
  GlanceTokenUnavailable,
  bodyExcerpt,
  classifyNetworkError,
  errorForNetwork,
  errorForResponse,
  type GlanceErrorDetails,
} from './errors.js';
import { assertRbdLocationFsid } from './locations.js';
import type {
  AddLocationOptions,
  AddLocationResult,
  ByteRange,
  CreateImageInput,
  DownloadOptions,
  GlanceClientOptions,
  GlanceImage,
  GlanceTokenProvider,
  ImageApiVersion,
  ImageDownload,
  ImagePatchOperation,
  ListImagesOptions,
  RawRequest,
  RawResponse,
  TokenSource,
  UploadOptions,
  UploadSource,
  ValidationDataOutcome,
} from './types.js';

const JSON_PATCH = 'application/openstack-images-v2.1-json-patch';
const DEFAULT_TIMEOUT_MS = 60_000;
const DEFAULT_RETRIES = 2;
const DEFAULT_RETRY_DELAY_MS = 200;
const MAX_RETRY_DELAY_MS = 2_000;
/** Error bodies are read only this far: they are for a message, not for parsing. */
const ERROR_BODY_LIMIT = 16 * 1024;
/** The first image API version with `POST /v2/images/{id}/locations`. */
const LOCATIONS_API_MINOR = 17;
/** Glance's 409 texts when it refuses a location's validation_data (glance/api/v2/images.py). */
const VALIDATION_REFUSED =
  /os_hash_algo must be|not a valid hexadecimal|not the correct size|already set with a different value|may only be provided when image status|Conflicting values/i;

function isValidationRefusal(err: unknown): err is GlanceError {
  if (err instanceof GlanceConflict) return VALIDATION_REFUSED.test(err.body ?? '');
  // A schema failure inside validation_data (e.g. a malformed value) is a 400 naming it.
  return err instanceof GlanceBadRequest && /validation_data/.test(err.body ?? '');
}

function refused(err: GlanceError): ValidationDataOutcome {
  return { status: 'rejected', reason: err.body ?? err.message, httpStatus: err.status ?? 0 };
}

interface SendOptions {
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

interface Sent {
  res: Dispatcher.ResponseData;
  details: GlanceErrorDetails;
  /** The tokens sent (user's, service's): kept out of every error. */
  secrets: string[];
}

/**
 * A typed client for the OpenStack Image API v2.
 *
 * Retries (with exponential backoff, at most `retries` times) only where repeating cannot do harm: GET and
 * HEAD on 5xx, timeouts and broken connections, and any method whose connection was refused before anything
 * was sent. Uploads are never retried. The token is sent as `X-Auth-Token` and kept out of every error.
 */
export class GlanceClient {
  readonly endpoint: string;
  readonly storeId: string | undefined;
  private readonly tokenSource: TokenSource | undefined;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly retryDelayMs: number;
  private readonly dispatcher: Dispatcher;
  private readonly ownDispatcher: Agent | undefined;
  private versionsCache: Promise<ImageApiVersion[]> | undefined;

  constructor(options: GlanceClientOptions) {
    this.endpoint = options.endpoint.replace(/\/+$/, '').replace(/\/v2$/, '');
    this.tokenSource = options.token;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.retries = Math.max(0, options.retries ?? DEFAULT_RETRIES);
    this.retryDelayMs = options.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS;
    this.storeId = options.storeId;
    if (options.dispatcher) {
      this.dispatcher = options.dispatcher;
    } else {
      this.ownDispatcher = new Agent({ connect: { timeout: this.timeoutMs } });
      this.dispatcher = this.ownDispatcher;
    }
  }

  /** Closes the connection pool the client made for itself (not a dispatcher you passed). Safe to call twice. */
  async close(): Promise<void> {
    if (this.ownDispatcher && !this.ownDispatcher.closed) await this.ownDispatcher.close();
  }

  // ---- versions -------------------------------------------------------------------------------------------

  /** The image API versions the server lists at `GET /versions` (cached after the first success). */
  async versions(): Promise<ImageApiVersion[]> {
    this.versionsCache ??= this.fetchVersions().catch((err: unknown) => {
      this.versionsCache = undefined;
      throw err;
    });
    return this.versionsCache;
  }

  /** True when image API 2.17+ (with `POST /v2/images/{id}/locations`) is CURRENT or SUPPORTED. */
  async supportsLocationsApi(): Promise<boolean> {
    return (await this.versions()).some(
      (v) => v.major === 2 && v.minor >= LOCATIONS_API_MINOR && (v.status === 'CURRENT' || v.status === 'SUPPORTED'),
    );
  }

  private async fetchVersions(): Promise<ImageApiVersion[]> {
    const sent = await this.send({ method: 'GET', path: '/versions' });
    const body = await this.readJson<{ versions?: unknown }>(sent);
    if (!Array.isArray(body.versions)) throw new GlanceInvalidResponse(sent.details, 'no versions list');
    const versions: ImageApiVersion[] = [];
    for (const v of body.versions as Array<{ id?: unknown; status?: unknown }>) {
      const match = typeof v.id === 'string' ? /^v(\d+)(?:\.(\d+))?$/.exec(v.id) : null;
      if (!match || typeof v.status !== 'string') continue;
      versions.push({ id: v.id as string, major: Number(match[1]), minor: Number(match[2] ?? 0), status: v.status });
    }
    return versions;
  }

  // ---- images ---------------------------------------------------------------------------------------------

  async createImage(input: CreateImageInput, options: { signal?: AbortSignal } = {}): Promise<GlanceImage> {
    const body: Record<string, unknown> = { ...input.properties, name: input.name };
    if (input.id !== undefined) body.id = input.id;
    if (input.diskFormat !== undefined) body.disk_format = input.diskFormat;
    if (input.containerFormat !== undefined) body.container_format = input.containerFormat;
    if (input.visibility !== undefined) body.visibility = input.visibility;
    if (input.minDisk !== undefined) body.min_disk = input.minDisk;
    if (input.minRam !== undefined) body.min_ram = input.minRam;
    if (input.protected !== undefined) body.protected = input.protected;
    if (input.tags !== undefined) body.tags = input.tags;
    const sent = await this.send({
      method: 'POST',
      path: '/v2/images',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: options.signal,
    });
    return this.readJson<GlanceImage>(sent);
  }

  async getImage(id: string, options: { signal?: AbortSignal } = {}): Promise<GlanceImage> {
    const sent = await this.send({ method: 'GET', path: imagePath(id), signal: options.signal });
    return this.readJson<GlanceImage>(sent);
  }

  /** Applies JSON-patch operations (e.g. `{ op: 'replace', path: '/name', value: 'x' }`); returns the new image. */
  async updateImage(
    id: string,
    operations: ImagePatchOperation[],
    options: { signal?: AbortSignal } = {},
  ): Promise<GlanceImage> {
    return this.patchImage(id, operations, options.signal, false);
  }

  private async patchImage(
    id: string,
    operations: ImagePatchOperation[],
    signal: AbortSignal | undefined,
    service: boolean,
  ): Promise<GlanceImage> {
    const sent = await this.send({
      method: 'PATCH',
      path: imagePath(id),
      headers: { 'content-type': JSON_PATCH },
      body: JSON.stringify(operations),
      signal,
      service,
    });
    return this.readJson<GlanceImage>(sent);
  }

  /**
   * Deletes the image (and, in Glance, the stored data behind every location). With `ignoreMissing`, a
   * missing image resolves to false instead of throwing GlanceNotFound.
   */
  async deleteImage(id: string, options: { ignoreMissing?: boolean; signal?: AbortSignal } = {}): Promise<boolean> {
    try {
      const sent = await this.send({ method: 'DELETE', path: imagePath(id), signal: options.signal });
      await sent.res.body.dump();
      return true;
    } catch (err) {
      if (options.ignoreMissing && err instanceof GlanceError && err.status === 404) return false;
      throw err;
    }
  }

  /** Every page of `GET /v2/images`, following `next` links. */
  async *listImagePages(options: ListImagesOptions = {}): AsyncGenerator<GlanceImage[], void, undefined> {
    let query = listQuery(options);
    const seen = new Set<string>();
    for (;;) {
      seen.add(query);
      const sent = await this.send({ method: 'GET', path: `/v2/images?${query}`, signal: options.signal });
      const page = await this.readJson<{ images?: GlanceImage[]; next?: string }>(sent);
      if (!Array.isArray(page.images)) throw new GlanceInvalidResponse(sent.details, 'no images list');
      yield page.images;
      if (!page.next) return;
      // Only the query of `next` is used: its path may lack a proxy's prefix that the endpoint has.
      const q = page.next.indexOf('?');
      query = q >= 0 ? page.next.slice(q + 1) : '';
      if (seen.has(query)) throw new GlanceInvalidResponse(sent.details, 'pagination loops');
    }
  }

  /** Every image matching the filters, one at a time, fetched page by page. */
  async *listImages(options: ListImagesOptions = {}): AsyncGenerator<GlanceImage, void, undefined> {
    for await (const page of this.listImagePages(options)) yield* page;
  }

  /** All matching images in one array (every page fetched). */
  async listAllImages(options: ListImagesOptions = {}): Promise<GlanceImage[]> {
    const all: GlanceImage[] = [];
    for await (const image of this.listImages(options)) all.push(image);
    return all;
  }

  // ---- data -----------------------------------------------------------------------------------------------

  /**
   * `PUT /v2/images/{id}/file`: streams `data` to Glance with backpressure (never buffered whole, never
   * retried). Give `size` to send Content-Length; otherwise the body is chunked. With a storeId the data
   * goes to that backend (`X-Image-Meta-Store`).
   */
  async upload(id: string, data: UploadSource, options: UploadOptions = {}): Promise<void> {
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
    const size = options.size ?? (data instanceof Uint8Array ? data.byteLength : undefined);
    if (size !== undefined) headers['content-length'] = String(size);
    if (this.storeId) headers['x-image-meta-store'] = this.storeId;
    const sent = await this.send({
      method: 'PUT',
      path: `${imagePath(id)}/file`,
      headers,
      body: data,
      retry: false,
      signal: options.signal,
    });
    await sent.res.body.dump();
  }

  /**
   * `GET /v2/images/{id}/file` as a stream. A 204 (the record exists, its data is gone) is GlanceNoData, never
   * an empty image. A `range` is asked of Glance with a Range header; when the store cannot serve ranges the
   * client cuts it from the full stream (unless `rangeFallback: false`).
   */
  async download(id: string, options: DownloadOptions = {}): Promise<ImageDownload> {
    const path = `${imagePath(id)}/file`;
    const { range } = options;
    if (range) checkRange(range);
    const headers: Record<string, string> = { accept: '*/*' };
    if (range) headers.range = `bytes=${range.start}-${range.end ?? ''}`;
    let sent: Sent;
    let servedBy: ImageDownload['rangeServedBy'];
    try {
      sent = await this.send({ method: 'GET', path, headers, signal: options.signal });
      servedBy = range ? 'server' : undefined;
    } catch (err) {
      if (!(err instanceof GlanceRangeNotSupported) || options.rangeFallback === false) throw err;
      sent = await this.send({ method: 'GET', path, headers: { accept: '*/*' }, signal: options.signal });
      servedBy = 'client';
    }
    const { res, details } = sent;
    if (res.statusCode === 204) {
      await res.body.dump();
      throw new GlanceNoData({ ...details, status: 204 });
    }
    if (range && res.statusCode !== 206) servedBy = 'client';
    const header = (name: string) => {
      const v = res.headers[name];
      return Array.isArray(v) ? v[0] : v;
    };
    const contentLength = header('content-length') === undefined ? undefined : Number(header('content-length'));
    let length = contentLength;
    let slice: { skip: number; take: number | undefined } | undefined;
    if (range && servedBy === 'client') {
      const stop = range.end === undefined ? contentLength : Math.min(range.end + 1, contentLength ?? Infinity);
      slice = { skip: range.start, take: stop === undefined ? undefined : Math.max(0, stop - range.start) };
      length = slice.take;
    }
    const stream = Readable.from(this.bodyChunks(res.body, details, sent.secrets, slice), { objectMode: false });
    return { stream, length, contentMd5: header('content-md5'), rangeServedBy: servedBy };
  }

  private async *bodyChunks(
    body: Dispatcher.ResponseData['body'],
    details: GlanceErrorDetails,
    secrets: string[],
    slice: { skip: number; take: number | undefined } | undefined,
  ): AsyncGenerator<Buffer, void, undefined> {
    let skip = slice?.skip ?? 0;
    let left = slice?.take ?? Infinity;
    try {
      for await (const raw of body as AsyncIterable<Buffer>) {
        let chunk = raw;
        if (skip > 0) {
          if (chunk.length <= skip) {
            skip -= chunk.length;
            continue;
          }
          chunk = chunk.subarray(skip);
          skip = 0;
        }
        if (chunk.length >= left) {
          yield chunk.subarray(0, left);
          return;
        }
        left -= chunk.length;
        yield chunk;
      }
    } catch (err) {
      throw errorForNetwork(details, scrubCause(err, secrets), 'download');
    } finally {
      if (!body.destroyed) body.destroy();
    }
  }

  // ---- locations ------------------------------------------------------------------------------------------

  /**
   * Registers `url` as a location of the image. Uses `POST /v2/images/{id}/locations` when the server has
   * image API 2.17+, else PATCH `add /locations/-` (which needs `show_multiple_locations = True`: otherwise
   * LocationsNotAllowed). Checksums given are sent as the location's validation_data; when Glance refuses
   * them the location is registered without them and `validationData` says why (not an error).
   */
  async addLocation(imageId: string, url: string, options: AddLocationOptions = {}): Promise<AddLocationResult> {
    if (options.expectedFsid !== undefined) assertRbdLocationFsid(url, options.expectedFsid);
    if (await this.supportsLocationsApi()) return this.addLocationByPost(imageId, url, options);
    return this.addLocationByPatch(imageId, url, options);
  }

  private async addLocationByPatch(
    imageId: string,
    url: string,
    options: AddLocationOptions,
  ): Promise<AddLocationResult> {
    const metadata: Record<string, unknown> = { ...options.metadata };
    if (this.storeId) metadata.store = this.storeId;
    const { checksum, osHashAlgo, osHashValue, signal } = options;
    const add = (value: Record<string, unknown>) =>
      this.patchImage(imageId, [{ op: 'add', path: '/locations/-', value }], signal, true);

    // Glance's schema takes validation_data only with both os_hash fields; it then records all three
    // atomically with the location, and only while the image is queued.
    if (osHashAlgo !== undefined && osHashValue !== undefined) {
      const validation: Record<string, string> = { os_hash_algo: osHashAlgo, os_hash_value: osHashValue };
      if (checksum !== undefined) validation.checksum = checksum;
      try {
        const image = await add({ url, metadata, validation_data: validation });
        return { image, api: 'patch', validationData: { status: 'set' } };
      } catch (err) {
        // Glance checks validation_data before it touches the locations, so nothing was added: try without.
        if (!isValidationRefusal(err)) throw err;
        const image = await add({ url, metadata });
        return { image, api: 'patch', validationData: refused(err) };
      }
    }

    const image = await add({ url, metadata });
    const given = Object.entries({ checksum, os_hash_algo: osHashAlgo, os_hash_value: osHashValue }).filter(
      (e): e is [string, string] => e[1] !== undefined,
    );
    if (given.length === 0) return { image, api: 'patch', validationData: { status: 'not-requested' } };
    // Without both hashes the only way left is patching the attributes, which Glance may refuse (Zed: 403
    // read-only). The location is registered either way; the refusal is reported, not thrown.
    try {
      const updated = await this.updateImage(
        imageId,
        given.map(([key, value]) => ({ op: 'replace' as const, path: `/${key}`, value })),
        { signal },
      );
      return { image: updated, api: 'patch', validationData: { status: 'set' } };
    } catch (err) {
      if (!(err instanceof GlanceForbidden || err instanceof GlanceBadRequest || err instanceof GlanceConflict)) throw err;
      return { image, api: 'patch', validationData: refused(err) };
    }
  }

  private async addLocationByPost(
    imageId: string,
    url: string,
    options: AddLocationOptions,
  ): Promise<AddLocationResult> {
    // The 2.17 API has no metadata or store field (Glance finds the store from the URL) and no md5: it
    // computes checksum and os_hash itself, checking the os_hash given here.
    const body: Record<string, unknown> = { url };
    const hashes = options.osHashAlgo !== undefined || options.osHashValue !== undefined;
    if (hashes) body.validation_data = { os_hash_algo: options.osHashAlgo, os_hash_value: options.osHashValue };
    const sent = await this.send({
      method: 'POST',
      path: `${imagePath(imageId)}/locations`,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: options.signal,
      service: true,
    });
    await sent.res.body.dump();
    const image = await this.getImage(imageId, { signal: options.signal });
    const requested = hashes || options.checksum !== undefined;
    return { image, api: 'post', validationData: { status: requested ? 'deferred' : 'not-requested' } };
  }

  // ---- raw ------------------------------------------------------------------------------------------------

  /**
   * One request as given (auth added, errors mapped like every other call, not retried): for API calls this
   * client does not wrap, and for checking how Glance answers malformed requests.
   */
  async rawRequest(req: RawRequest): Promise<RawResponse> {
    const sent = await this.send({
      method: req.method as Dispatcher.HttpMethod,
      path: req.path,
      headers: req.headers,
      body: req.body,
      retry: false,
      signal: req.signal,
    });
    return { status: sent.res.statusCode, headers: sent.res.headers, text: await sent.res.body.text() };
  }

  // ---- transport ------------------------------------------------------------------------------------------

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

  private async send(options: SendOptions): Promise<Sent> {
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

  private async readJson<T>(sent: Sent): Promise<T> {
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

function imagePath(id: string): string {
  return `/v2/images/${encodeURIComponent(id)}`;
}

function checkRange(range: ByteRange): void {
  const ok =
    Number.isSafeInteger(range.start) &&
    range.start >= 0 &&
    (range.end === undefined || (Number.isSafeInteger(range.end) && range.end >= range.start));
  if (!ok) throw new RangeError(`invalid byte range ${JSON.stringify(range)}`);
}

function listQuery(options: ListImagesOptions): string {
  const q = new URLSearchParams();
  if (options.pageSize !== undefined) q.set('limit', String(options.pageSize));
  if (options.marker !== undefined) q.set('marker', options.marker);
  if (options.name !== undefined) q.set('name', options.name);
  if (options.status !== undefined) q.set('status', options.status);
  if (options.visibility !== undefined) q.set('visibility', options.visibility);
  if (options.owner !== undefined) q.set('owner', options.owner);
  for (const tag of options.tags ?? []) q.append('tag', tag);
  if (options.sortKey !== undefined) q.set('sort_key', options.sortKey);
  if (options.sortDir !== undefined) q.set('sort_dir', options.sortDir);
  for (const [k, v] of Object.entries(options.properties ?? {})) q.set(k, v);
  return q.toString();
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
function scrubCause(err: unknown, secrets: string[]): unknown {
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
