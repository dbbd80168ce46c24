// GlanceClient: the OpenStack Image API v2 over undici, for what snapstore needs — create/get/list/update/
// delete images, upload and download data as streams (data.ts), and register locations with whichever
// locations API the server has (location-calls.ts). The HTTP, tokens and retries are transport.ts's.
import type { Dispatcher } from 'undici';
import { GlanceError, GlanceInvalidResponse } from './errors.js';
import { downloadImage, uploadImage } from './data.js';
import { addLocationByPatch, addLocationByPost, type ImageCalls } from './location-calls.js';
import { listLocations } from './location-task.js';
import { assertRbdLocationFsid } from './locations.js';
import { readBackLocation, type LocationState, type ReadBackOptions } from './outcome.js';
import { imagePath } from './paths.js';
import { GlanceTransport } from './transport.js';
import type {
  AddLocationOptions,
  AddLocationResult,
  CreateImageInput,
  DownloadOptions,
  GlanceClientOptions,
  GlanceImage,
  ImageApiVersion,
  ImageDownload,
  ImageLocation,
  ImagePatchOperation,
  ListImagesOptions,
  RawRequest,
  RawResponse,
  UploadOptions,
  UploadSource,
} from './types.js';

const JSON_PATCH = 'application/openstack-images-v2.1-json-patch';
/** The first image API version with `POST /v2/images/{id}/locations`. */
const LOCATIONS_API_MINOR = 17;

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
  private readonly transport: GlanceTransport;
  private versionsCache: Promise<ImageApiVersion[]> | undefined;

  constructor(options: GlanceClientOptions) {
    this.transport = new GlanceTransport(options);
    this.endpoint = this.transport.endpoint;
    this.storeId = options.storeId;
  }

  /** Closes the connection pool the client made for itself (not a dispatcher you passed). Safe to call twice. */
  async close(): Promise<void> {
    await this.transport.close();
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
    const sent = await this.transport.send({ method: 'GET', path: '/versions' });
    const body = await this.transport.readJson<{ versions?: unknown }>(sent);
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
    const sent = await this.transport.send({
      method: 'POST',
      path: '/v2/images',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: options.signal,
    });
    return this.transport.readJson<GlanceImage>(sent);
  }

  async getImage(id: string, options: { signal?: AbortSignal } = {}): Promise<GlanceImage> {
    const sent = await this.transport.send({ method: 'GET', path: imagePath(id), signal: options.signal });
    return this.transport.readJson<GlanceImage>(sent);
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
    const sent = await this.transport.send({
      method: 'PATCH',
      path: imagePath(id),
      headers: { 'content-type': JSON_PATCH },
      body: JSON.stringify(operations),
      signal,
      service,
    });
    return this.transport.readJson<GlanceImage>(sent);
  }

  /**
   * Deletes the image (and, in Glance, the stored data behind every location). With `ignoreMissing`, a
   * missing image resolves to false instead of throwing GlanceNotFound.
   */
  async deleteImage(id: string, options: { ignoreMissing?: boolean; signal?: AbortSignal } = {}): Promise<boolean> {
    try {
      const sent = await this.transport.send({ method: 'DELETE', path: imagePath(id), signal: options.signal });
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
      const sent = await this.transport.send({ method: 'GET', path: `/v2/images?${query}`, signal: options.signal });
      const page = await this.transport.readJson<{ images?: GlanceImage[]; next?: string }>(sent);
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
  upload(id: string, data: UploadSource, options: UploadOptions = {}): Promise<void> {
    return uploadImage(this.transport, this.storeId, id, data, options);
  }

  /**
   * `GET /v2/images/{id}/file` as a stream. A 204 (the record exists, its data is gone) is GlanceNoData, never
   * an empty image. A `range` is asked of Glance with a Range header; when the store cannot serve ranges the
   * client cuts it from the full stream (unless `rangeFallback: false`).
   */
  download(id: string, options: DownloadOptions = {}): Promise<ImageDownload> {
    return downloadImage(this.transport, id, options);
  }

  // ---- locations ------------------------------------------------------------------------------------------

  /**
   * Registers `url` as a location of the image. Uses `POST /v2/images/{id}/locations` when the server has
   * image API 2.17+ (then waits for Glance's location task: GlanceLocationImportFailed when it fails;
   * GlanceServiceRoleRequired when neither token carries the `service` role), else PATCH `add /locations/-`
   * (which needs `show_multiple_locations = True`: otherwise LocationsNotAllowed). Checksums given are sent as the location's validation_data; when Glance refuses
   * them the location is registered without them and `validationData` says why (not an error).
   */
  async addLocation(imageId: string, url: string, options: AddLocationOptions = {}): Promise<AddLocationResult> {
    if (options.expectedFsid !== undefined) assertRbdLocationFsid(url, options.expectedFsid);
    const calls: ImageCalls = {
      transport: this.transport,
      storeId: this.storeId,
      patch: (id, operations, signal, service) => this.patchImage(id, operations, signal, service),
      update: (id, operations, opts) => this.updateImage(id, operations, opts),
      get: (id, signal) => this.getImage(id, signal ? { signal } : {}),
    };
    if (await this.supportsLocationsApi()) return addLocationByPost(calls, imageId, url, options);
    return addLocationByPatch(calls, imageId, url, options);
  }

  /**
   * After a location call without a clear answer (see `mayHaveApplied`): reads the image back, a few times
   * at most, and says whether Glance holds `url` (the image active with it), does not, or cannot tell.
   * Not cancellable by design: it decides what a cancelled run may delete.
   */
  readLocation(imageId: string, url: string, options: ReadBackOptions = {}): Promise<LocationState> {
    return readBackLocation((id) => this.getImage(id), imageId, url, options);
  }

  /** `GET /v2/images/{id}/locations` (image API 2.17+; allowed to the `service` role by default policy). */
  listLocations(imageId: string, options: { signal?: AbortSignal } = {}): Promise<ImageLocation[]> {
    return listLocations(this.transport, imageId, options.signal);
  }

  // ---- raw ------------------------------------------------------------------------------------------------

  /**
   * One request as given (auth added, errors mapped like every other call, not retried): for API calls this
   * client does not wrap, and for checking how Glance answers malformed requests.
   */
  async rawRequest(req: RawRequest): Promise<RawResponse> {
    const sent = await this.transport.send({
      method: req.method as Dispatcher.HttpMethod,
      path: req.path,
      headers: req.headers,
      body: req.body,
      retry: false,
      signal: req.signal,
    });
    return { status: sent.res.statusCode, headers: sent.res.headers, text: await sent.res.body.text() };
  }
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
