// The shapes of the OpenStack Image API v2 as the client sends and receives them. Images keep Glance's own
// (snake_case) field names so what you read matches the API reference; options are camelCase.
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';

/**
 * A token provider the client can do more with (src/keystone's OpenStackAuth is one): `invalidate` is called
 * with a token Glance answered 401 to, before the request is sent once more with a fresh token;
 * `serviceToken` is sent as `X-Service-Token` with the location calls when it gives one.
 */
export interface GlanceTokenProvider {
  token(): string | Promise<string>;
  invalidate?(token: string): void;
  serviceToken?(): string | undefined | Promise<string | undefined>;
}

export type TokenSource = string | (() => string | Promise<string>) | GlanceTokenProvider;

export interface GlanceClientOptions {
  /** Image API endpoint without `/v2`, e.g. `http://127.0.0.1:9292`. */
  endpoint: string;
  /** Sent as `X-Auth-Token`; a function or provider is asked before every request (return a fresh token). Never logged. */
  token?: TokenSource;
  /** Per-request budget for connecting, for the response headers, and between body chunks. Default 60 s. */
  timeoutMs?: number;
  /** Retries of safe requests (see GlanceClient). Default 2. */
  retries?: number;
  /** First retry delay; doubles each retry, capped at 2 s. Default 200 ms. */
  retryDelayMs?: number;
  /** Multi-store backend id (glance-api.conf `enabled_backends`), used for uploads and PATCH-added locations. */
  storeId?: string;
  /** undici dispatcher to send through; by default the client makes its own Agent (closed by `close()`). */
  dispatcher?: Dispatcher;
}

export type ImageStatus =
  | 'queued'
  | 'saving'
  | 'uploading'
  | 'importing'
  | 'active'
  | 'deactivated'
  | 'killed'
  | 'deleted'
  | 'pending_delete';

export type ImageVisibility = 'public' | 'private' | 'shared' | 'community';

export interface ImageLocation {
  url: string;
  metadata: Record<string, unknown>;
  validation_data?: { checksum?: string; os_hash_algo?: string; os_hash_value?: string };
}

/** An image record as `GET /v2/images/{id}` returns it; extra properties appear as more string fields. */
export interface GlanceImage {
  id: string;
  name: string | null;
  status: ImageStatus;
  visibility: ImageVisibility;
  disk_format: string | null;
  container_format: string | null;
  size: number | null;
  virtual_size: number | null;
  checksum: string | null;
  os_hash_algo: string | null;
  os_hash_value: string | null;
  min_disk: number;
  min_ram: number;
  protected: boolean;
  os_hidden?: boolean;
  owner: string | null;
  tags: string[];
  created_at: string;
  updated_at: string;
  /** Present when glance-api.conf has `show_multiple_locations = True`. */
  locations?: ImageLocation[];
  /** Present when glance-api.conf has `show_image_direct_url = True` and the image has data. */
  direct_url?: string;
  /** Store ids holding the data (multi-store deployments). */
  stores?: string;
  [property: string]: unknown;
}

export interface CreateImageInput {
  name: string;
  /** Pick the id yourself (a UUID); Glance makes one otherwise. */
  id?: string;
  diskFormat?: 'raw' | 'qcow2' | 'vmdk' | 'vdi' | 'vhd' | 'vhdx' | 'iso' | 'ploop' | 'ami' | 'ari' | 'aki' | (string & {});
  containerFormat?: 'bare' | 'ovf' | 'ova' | 'aki' | 'ari' | 'ami' | 'docker' | 'compressed' | (string & {});
  visibility?: ImageVisibility;
  minDisk?: number;
  minRam?: number;
  protected?: boolean;
  tags?: string[];
  /** Extra properties; Glance's schema only allows string values. */
  properties?: Record<string, string>;
}

export interface ListImagesOptions {
  /** Page size (Glance's `limit`); the iterator follows `next` links for the rest. */
  pageSize?: number;
  marker?: string;
  name?: string;
  status?: ImageStatus;
  visibility?: ImageVisibility | 'all';
  owner?: string;
  /** Images carrying every one of these tags. */
  tags?: string[];
  sortKey?: string;
  sortDir?: 'asc' | 'desc';
  /** Extra-property filters, e.g. `{ image_type: 'snapshot' }`. */
  properties?: Record<string, string>;
  signal?: AbortSignal;
}

/** One JSON-patch operation on an image (`application/openstack-images-v2.1-json-patch`). */
export type ImagePatchOperation =
  | { op: 'add' | 'replace'; path: string; value: unknown }
  | { op: 'remove'; path: string };

export type UploadSource = Readable | AsyncIterable<Uint8Array> | Uint8Array;

export interface UploadOptions {
  /** Bytes the source will yield; sent as Content-Length (otherwise the body is chunked). */
  size?: number;
  signal?: AbortSignal;
}

export interface ByteRange {
  /** First byte, 0-based. */
  start: number;
  /** Last byte, inclusive; omit for "to the end". */
  end?: number;
}

export interface DownloadOptions {
  range?: ByteRange;
  /**
   * When the image's store cannot serve ranges (GlanceRangeNotSupported, e.g. Zed's rbd store), fetch the
   * whole image and cut the range out of the stream in the client. Default true.
   */
  rangeFallback?: boolean;
  signal?: AbortSignal;
}

export interface ImageDownload {
  /** The bytes, streamed with backpressure; network failures surface as GlanceError on the stream. */
  stream: Readable;
  /** Bytes the stream will yield, when known. */
  length: number | undefined;
  /** Glance's `Content-MD5` of the whole image (not of a range), when it sends one. */
  contentMd5: string | undefined;
  /** Who honoured the requested range: Glance (206), or the client cutting it from the full image. */
  rangeServedBy: 'server' | 'client' | undefined;
}

export interface AddLocationOptions {
  /** Location metadata (PATCH API only; the 2.17 API has none). */
  metadata?: Record<string, unknown>;
  /**
   * md5 hex of the data (PATCH API). Recorded with the location when both os_hash fields are given too;
   * alone, the client tries to set it afterwards and reports the refusal in `validationData`.
   */
  checksum?: string;
  /** Glance's `hashing_algorithm`, normally `sha512`. */
  osHashAlgo?: string;
  osHashValue?: string;
  /** Refuse (LocationFsidMismatch) unless the URL is rbd://<this fsid>/…, checked before any request. */
  expectedFsid?: string;
  signal?: AbortSignal;
}

export type ValidationDataOutcome =
  | { status: 'not-requested' }
  /** Glance recorded checksum/os_hash_* with the location. */
  | { status: 'set' }
  /** The 2.17 API took the hashes; Glance computes and checks them in the background. */
  | { status: 'deferred' }
  /** Glance refused the hashes (why in `reason`); the location was registered without them. */
  | { status: 'rejected'; reason: string; httpStatus: number };

export interface AddLocationResult {
  image: GlanceImage;
  /** Which API registered it: `patch` (image API ≤ 2.16) or `post` (2.17+). */
  api: 'patch' | 'post';
  validationData: ValidationDataOutcome;
}

export interface ImageApiVersion {
  /** As Glance spells it, e.g. `v2.16`. */
  id: string;
  major: number;
  minor: number;
  status: 'CURRENT' | 'SUPPORTED' | 'DEPRECATED' | 'EXPERIMENTAL' | (string & {});
}

export interface RawRequest {
  method: string;
  /** Path below the endpoint, e.g. `/v2/images/ID`, with query string if any. */
  path: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  signal?: AbortSignal;
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}
