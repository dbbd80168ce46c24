// The Glance client's errors: ONE funnel (`errorForResponse`, `errorForNetwork`) turns an HTTP status and
// body, or a socket error, into a class callers can catch. Every error carries the method and path (no query
// string), the status when there was one, and a short text excerpt of the body with HTML removed.
import { SnapstoreError, redactSecrets, type ErrorCode, type ErrorContext } from '../errors.js';

export interface GlanceErrorDetails {
  method: string;
  /** Request path without its query string. */
  path: string;
  status?: number;
  /** At most a few hundred characters of the response body, tags stripped. */
  body?: string;
  /** How many times the request was sent (retries included). */
  attempts?: number;
}

/** Base of every error the Glance client throws. */
export class GlanceError extends SnapstoreError {
  readonly status: number | undefined;
  readonly method: string;
  readonly path: string;
  readonly body: string | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    details: GlanceErrorDetails,
    options: { cause?: unknown; context?: ErrorContext } = {},
  ) {
    super(code, message, {
      cause: options.cause,
      context: {
        method: details.method,
        path: details.path,
        status: details.status,
        body: details.body,
        attempts: details.attempts,
        ...options.context,
      },
    });
    this.status = details.status;
    this.method = details.method;
    this.path = details.path;
    this.body = details.body;
  }
}

function describe(details: GlanceErrorDetails, what: string): string {
  const status = details.status === undefined ? '' : ` ${details.status}`;
  const body = details.body ? `: ${details.body}` : '';
  return `Glance ${details.method} ${details.path}${status} ${what}${body}`;
}

type HttpErrorClass = new (details: GlanceErrorDetails, options?: { cause?: unknown }) => GlanceError;

/** A status the client has no more specific class for. */
export class GlanceHttpError extends GlanceError {
  constructor(details: GlanceErrorDetails, options: { cause?: unknown } = {}) {
    super('GLANCE_HTTP_ERROR', describe(details, 'failed'), details, options);
  }
}

export class GlanceUnauthorized extends GlanceError {
  constructor(details: GlanceErrorDetails, options: { cause?: unknown } = {}) {
    super('GLANCE_UNAUTHORIZED', describe(details, 'unauthorized (token missing, expired or wrong)'), details, options);
  }
}

export class GlanceForbidden extends GlanceError {
  constructor(details: GlanceErrorDetails, options: { cause?: unknown } = {}, code: ErrorCode = 'GLANCE_FORBIDDEN') {
    super(code, describe(details, 'forbidden'), details, options);
  }
}

/**
 * Glance refuses to add locations because `show_multiple_locations` is off. A subclass of GlanceForbidden so
 * a caller that registers locations can catch exactly this and fall back to uploading the data.
 */
export class LocationsNotAllowed extends GlanceForbidden {
  constructor(details: GlanceErrorDetails, options: { cause?: unknown } = {}) {
    super(details, options, 'GLANCE_LOCATIONS_NOT_ALLOWED');
  }
}

/**
 * Image API 2.17 refused a non-http location because neither the token nor a service token carries the
 * `service` role (glance/api/v2/images.py add_location): a configuration matter, so exit 2.
 */
export class GlanceServiceRoleRequired extends GlanceForbidden {
  constructor(details: GlanceErrorDetails, options: { cause?: unknown } = {}) {
    super(details, options, 'GLANCE_SERVICE_ROLE_REQUIRED');
    this.message = `${this.message}; registering an rbd or file location needs the \`service\` role: send a service token (nova.conf [service_user] send_service_user_token = True, or OpenStackAuth sendServiceToken with serviceAuth)`;
  }
}

export class GlanceNotFound extends GlanceError {
  constructor(details: GlanceErrorDetails, options: { cause?: unknown } = {}) {
    super('GLANCE_NOT_FOUND', describe(details, 'not found'), details, options);
  }
}

export class GlanceConflict extends GlanceError {
  constructor(details: GlanceErrorDetails, options: { cause?: unknown } = {}) {
    super('GLANCE_CONFLICT', describe(details, 'conflict'), details, options);
  }
}

export class GlanceTooLarge extends GlanceError {
  constructor(details: GlanceErrorDetails, options: { cause?: unknown } = {}) {
    super('GLANCE_TOO_LARGE', describe(details, 'too large (size cap or quota)'), details, options);
  }
}

export class GlanceUnsupportedMediaType extends GlanceError {
  constructor(details: GlanceErrorDetails, options: { cause?: unknown } = {}) {
    super('GLANCE_UNSUPPORTED_MEDIA_TYPE', describe(details, 'unsupported media type'), details, options);
  }
}

export class GlanceBadRequest extends GlanceError {
  constructor(details: GlanceErrorDetails, options: { cause?: unknown } = {}, code: ErrorCode = 'GLANCE_BAD_REQUEST') {
    super(code, describe(details, 'bad request'), details, options);
  }
}

/** Glance could not open the location (missing RBD image or snapshot, unknown scheme, bad URL). */
export class GlanceInvalidLocation extends GlanceBadRequest {
  constructor(details: GlanceErrorDetails, options: { cause?: unknown } = {}) {
    super(details, options, 'GLANCE_INVALID_LOCATION');
  }
}

/** The image's store cannot serve byte ranges (Zed's rbd store, for one). */
export class GlanceRangeNotSupported extends GlanceBadRequest {
  constructor(details: GlanceErrorDetails, options: { cause?: unknown } = {}) {
    super(details, options, 'GLANCE_RANGE_NOT_SUPPORTED');
  }
}

export class GlanceServerError extends GlanceError {
  constructor(details: GlanceErrorDetails, options: { cause?: unknown } = {}) {
    super('GLANCE_SERVER_ERROR', describe(details, 'server error'), details, options);
  }
}

export class GlanceTimeout extends GlanceError {
  constructor(details: GlanceErrorDetails, options: { cause?: unknown; context?: ErrorContext } = {}) {
    super('GLANCE_TIMEOUT', describe(details, 'timed out'), details, options);
  }
}

/**
 * A location call may have been applied, and reading the image back did not tell (see outcome.ts). Also
 * thrown by the location calls when a request after the location was accepted fails (the follow-up GET of
 * the 2.17 API, the attribute patch): then the location was applied and the caller reads it back.
 */
export class GlanceOutcomeUnknown extends GlanceError {
  constructor(details: GlanceErrorDetails, what: string, options: { cause?: unknown; context?: ErrorContext } = {}) {
    super('GLANCE_OUTCOME_UNKNOWN', `${describe(details, 'outcome unknown')}: ${what}`, details, options);
  }
}

/** Glance could not be reached, or the connection broke (refused, reset, closed mid-request). */
export class GlanceUnavailable extends GlanceError {
  constructor(details: GlanceErrorDetails, options: { cause?: unknown; context?: ErrorContext } = {}) {
    super('GLANCE_UNAVAILABLE', describe(details, 'unavailable'), details, options);
  }
}

/** Glance answered 204 to a download: the image record exists but the data behind it is gone. */
export class GlanceNoData extends GlanceError {
  constructor(details: GlanceErrorDetails) {
    super('GLANCE_NO_DATA', describe(details, 'returned no data (the stored data behind the image is gone)'), details);
  }
}

/** The request failed for a reason that is neither HTTP nor the network: an aborted signal, a source stream error. */
export class GlanceRequestFailed extends GlanceError {
  constructor(details: GlanceErrorDetails, options: { cause?: unknown; context?: ErrorContext } = {}) {
    super('GLANCE_REQUEST_FAILED', describe(details, 'failed'), details, options);
  }
}

/** Glance answered something that is not the JSON the API defines. */
export class GlanceInvalidResponse extends GlanceError {
  constructor(details: GlanceErrorDetails, what: string, options: { cause?: unknown } = {}) {
    super('GLANCE_INVALID_RESPONSE', describe(details, `returned an invalid response (${what})`), details, options);
  }
}

/** The token provider threw; its error is the cause (with the token, if it held one, scrubbed). */
export class GlanceTokenUnavailable extends GlanceError {
  constructor(details: GlanceErrorDetails, options: { cause?: unknown } = {}) {
    super('GLANCE_TOKEN_UNAVAILABLE', describe(details, 'not sent: the token provider failed'), details, options);
  }
}

/**
 * Refused before any request: the rbd:// location names another cluster than the expected one. Glance does
 * not check the fsid in rbd URLs, so registering it would make an image whose data is not where it says.
 */
export class LocationFsidMismatch extends SnapstoreError {
  readonly expectedFsid: string;
  readonly actualFsid: string | null;

  constructor(url: string, expectedFsid: string, actualFsid: string | null, reason?: string) {
    super(
      'GLANCE_LOCATION_FSID_MISMATCH',
      reason ??
        `refusing to register ${redactSecrets(url)}: its cluster fsid ${actualFsid ?? '(none)'} is not the expected ${expectedFsid}`,
      { context: { url: redactSecrets(url), expectedFsid, actualFsid } },
    );
    this.expectedFsid = expectedFsid;
    this.actualFsid = actualFsid;
  }
}

const EXCERPT_LENGTH = 300;

/** Turns a Glance error body (JSON `{message}`, webob HTML, or text) into one short line without markup. */
export function bodyExcerpt(raw: string): string {
  let text = raw;
  try {
    const parsed: unknown = JSON.parse(raw);
    if (parsed && typeof parsed === 'object') {
      const obj = parsed as Record<string, unknown>;
      const inner = obj.error && typeof obj.error === 'object' ? (obj.error as Record<string, unknown>) : obj;
      const message = inner.message ?? inner.explanation ?? inner.title;
      if (typeof message === 'string') text = message;
    }
  } catch {
    // Not JSON: webob's HTML page or plain text.
  }
  text = text
    .replace(/<(script|style|title|head)\b[^>]*>[\s\S]*?<\/\1>/gi, ' ')
    .replace(/<[^>]*>/g, ' ')
    .replace(/&nbsp;/g, ' ')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&')
    .replace(/\s+/g, ' ')
    .trim();
  return text.length > EXCERPT_LENGTH ? `${text.slice(0, EXCERPT_LENGTH - 1)}…` : text;
}

const STATUS_CLASSES: Record<number, HttpErrorClass> = {
  401: GlanceUnauthorized,
  403: GlanceForbidden,
  404: GlanceNotFound,
  409: GlanceConflict,
  413: GlanceTooLarge,
  415: GlanceUnsupportedMediaType,
};

/** The error for an HTTP error status, chosen by status and, where Glance reuses a status, by body text. */
export function errorForResponse(details: GlanceErrorDetails & { status: number }): GlanceError {
  const body = details.body ?? '';
  if (details.status === 403 && /not allowed to add locations if locations are invisible/i.test(body)) {
    return new LocationsNotAllowed(details);
  }
  if (details.status === 403 && /http store must be enabled to use location API/i.test(body)) {
    return new GlanceServiceRoleRequired(details);
  }
  if (details.status === 400) {
    if (/invalid location/i.test(body)) return new GlanceInvalidLocation(details);
    if (/getting images randomly from this store is not supported/i.test(body)) {
      return new GlanceRangeNotSupported(details);
    }
    return new GlanceBadRequest(details);
  }
  if (details.status >= 500) return new GlanceServerError(details);
  const cls = STATUS_CLASSES[details.status];
  return cls ? new cls(details) : new GlanceHttpError(details);
}

/** What went wrong below HTTP, from a Node or undici error's code. */
export type NetworkFailure = 'refused' | 'broken' | 'timeout' | 'aborted' | 'other';

const REFUSED = new Set(['ECONNREFUSED']);
const BROKEN = new Set([
  'ECONNRESET',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_DESTROYED',
]);
const TIMEOUT = new Set(['ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

function codesOf(err: unknown): string[] {
  if (!err || typeof err !== 'object') return [];
  const e = err as { code?: unknown; errors?: unknown; cause?: unknown };
  const codes = typeof e.code === 'string' ? [e.code] : [];
  // Happy-eyeballs connects fail with an AggregateError of one error per address.
  if (Array.isArray(e.errors)) for (const inner of e.errors) codes.push(...codesOf(inner));
  if (e.cause && e.cause !== err) codes.push(...codesOf(e.cause));
  return codes;
}

export function classifyNetworkError(err: unknown): NetworkFailure {
  const codes = codesOf(err);
  if (codes.includes('UND_ERR_ABORTED') || (err instanceof Error && err.name === 'AbortError')) return 'aborted';
  if (codes.some((c) => TIMEOUT.has(c))) return 'timeout';
  if (codes.length > 0 && codes.every((c) => REFUSED.has(c))) return 'refused';
  if (codes.some((c) => BROKEN.has(c) || REFUSED.has(c))) return 'broken';
  return 'other';
}

export function errorForNetwork(details: GlanceErrorDetails, err: unknown, phase: string): GlanceError {
  const failure = classifyNetworkError(err);
  const context = { failure, phase, errorCode: codesOf(err)[0] ?? null };
  if (failure === 'timeout') return new GlanceTimeout(details, { cause: err, context });
  if (failure === 'refused' || failure === 'broken') return new GlanceUnavailable(details, { cause: err, context });
  return new GlanceRequestFailed(details, { cause: err, context });
}
