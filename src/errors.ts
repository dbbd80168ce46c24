// The root of every error snapstore throws, and the ONE catalog of their codes. Flystorage-style: a stable
// `code` callers switch on, the `context` that explains it (never a secret), and the original `cause`.
// Every code has one meaning and one exit class, shared by the library and the `snapstore` command:
//   1 — the operation failed (after cleaning up what it created): retrying later or elsewhere may work;
//   2 — the input or the configuration is wrong: the same call fails again until someone fixes it.

/** Every error code snapstore uses: what it means, and the exit status of the `snapstore` command. */
export const ERROR_CATALOG = {
  // Input and configuration (exit 2)
  USAGE: { exit: 2, meaning: 'the command line is wrong (unknown option, missing argument)' },
  INVALID_ARGUMENT: { exit: 2, meaning: 'an argument of a library call is out of its domain' },
  CONFIG_INVALID: { exit: 2, meaning: 'a configuration file or key is missing or wrong; the message names the key and the file' },
  NOT_CONFIGURED: { exit: 2, meaning: 'the operation needs something the configuration does not provide (a source cluster, Glance, an RBD target)' },
  CEPH_CONFIG: { exit: 2, meaning: 'ceph.conf cannot be read, or names no monitors, or monitor addresses that do not parse or resolve' },
  CEPH_AUTH: { exit: 2, meaning: 'Ceph refused the credentials: malformed or wrong key, unknown user, missing or unreadable keyring' },
  NATIVE_UNAVAILABLE: { exit: 2, meaning: 'the ceph-rbd-napi addon (or librbd/librados) cannot be loaded' },
  BAD_SOURCE: { exit: 2, meaning: 'the SOURCE is not rbd://fsid/pool/image[/snap] or file:///path, or not usable as a source' },
  BAD_LOCATION: { exit: 2, meaning: 'a location is malformed or not served by this store' },
  FOREIGN_LOCATION: { exit: 2, meaning: 'a location names another Ceph cluster (fsid) than the store is connected to' },
  INVALID_IMAGE_ID: { exit: 2, meaning: 'an image id cannot name an image (empty, `/`, `..`, control characters)' },
  INVALID_RANGE: { exit: 2, meaning: 'a read range lies outside the image or is not a non-negative integer' },
  BAD_DATA: { exit: 2, meaning: 'the data handed to a store is not a stream or iterable of bytes' },
  GROUP_CONFLICT: { exit: 2, meaning: 'a group snapshot needs its disks in one RBD group or in none; some are in another group (or in none)' },
  MODE_NOT_POSSIBLE: { exit: 2, meaning: 'the path asked for (direct, instant) cannot be taken; `check` says why' },
  SOURCE_NOT_FOUND: { exit: 2, meaning: 'the disk, snapshot or file named by the source does not exist' },
  TARGET_EXISTS: { exit: 2, meaning: 'the image id is already taken in the target store' },
  NOT_FOUND: { exit: 2, meaning: 'the image a location names does not exist' },
  EXISTS: { exit: 2, meaning: 'an image with that id already exists in the store' },
  KEYSTONE_AUTH: { exit: 2, meaning: 'Keystone refused the credentials (wrong password or secret, unknown user or project); the message names where they came from, never the secret' },
  KEYSTONE_NO_CREDENTIALS: { exit: 2, meaning: 'Glance needs a token and no credential source (library option, OS_CLOUD, OS_* variables, nova.conf [glance]) gives one' },
  KEYSTONE_NO_ENDPOINT: { exit: 2, meaning: 'the Keystone service catalog has no endpoint for the service type, interfaces and region asked for' },
  GLANCE_SERVICE_ROLE_REQUIRED: { exit: 2, meaning: 'Glance (image API 2.17+) registers rbd/file locations only for the `service` role: send a service token ([service_user] send_service_user_token = True, or sendServiceToken)' },
  // Operational failures (exit 1)
  CEPH_UNREACHABLE: { exit: 1, meaning: 'no Ceph monitor answered within the connect timeout' },
  STORE_UNAVAILABLE: { exit: 1, meaning: 'the store backend cannot be reached or used right now' },
  STORE_ERROR: { exit: 1, meaning: 'the store backend failed in a way no closer code describes' },
  STORE_FULL: { exit: 1, meaning: 'the store is out of space or quota' },
  PERMISSION: { exit: 1, meaning: 'the store refused the operation to this user' },
  IN_USE: { exit: 1, meaning: 'something depends on the image (clones, watchers, pending instant snapshots)' },
  SIZE_MISMATCH: { exit: 1, meaning: 'the data was shorter or longer than the size announced' },
  CANCELLED: { exit: 1, meaning: 'the caller cancelled the operation; everything it had created was removed' },
  CLOSED: { exit: 1, meaning: 'the object (store, connection, coordinator) was closed before the call' },
  SNAPSHOT_FAILED: { exit: 1, meaning: 'a snapshot step failed and copying could not help; everything created was removed' },
  CLEANUP_FAILED: { exit: 1, meaning: 'an operation failed and removing what it created failed too; run gc' },
  LEASE_LOST: { exit: 1, meaning: "another process took over this run's or flatten's journal entry (its lease had run out); this one stopped" },
  FLATTEN_FAILED: { exit: 1, meaning: 'a background flatten failed; the image stays queued' },
  MGR_UNAVAILABLE: { exit: 1, meaning: 'no ceph-mgr answered a command that needed one (rbd_support task queue)' },
  NOT_SUPPORTED: { exit: 1, meaning: 'the backend does not support the operation (librbd ENOTSUP/EOPNOTSUPP)' },
  CROSS_CLUSTER: { exit: 1, meaning: 'librbd refused an operation between two clusters (EXDEV)' },
  KEYSTONE_UNREACHABLE: { exit: 1, meaning: 'Keystone could not be reached or did not answer within the timeout' },
  KEYSTONE_ERROR: { exit: 1, meaning: 'Keystone answered with an error or a body no closer code describes (5xx, no token)' },
  INTERNAL: { exit: 1, meaning: 'snapstore has a bug: an error no other code describes' },
  // Glance (exit 1)
  GLANCE_HTTP_ERROR: { exit: 1, meaning: 'Glance answered with an HTTP status no closer code describes' },
  GLANCE_UNAUTHORIZED: { exit: 1, meaning: 'Glance answered 401: the token is missing, expired or wrong' },
  GLANCE_FORBIDDEN: { exit: 1, meaning: 'Glance answered 403' },
  GLANCE_LOCATIONS_NOT_ALLOWED: { exit: 1, meaning: 'Glance refuses locations (show_multiple_locations is off, or the policy)' },
  GLANCE_NOT_FOUND: { exit: 1, meaning: 'Glance answered 404' },
  GLANCE_CONFLICT: { exit: 1, meaning: 'Glance answered 409 (the image is in a state that does not allow the call)' },
  GLANCE_TOO_LARGE: { exit: 1, meaning: 'Glance answered 413 (image_size_cap or quota)' },
  GLANCE_UNSUPPORTED_MEDIA_TYPE: { exit: 1, meaning: 'Glance answered 415' },
  GLANCE_BAD_REQUEST: { exit: 1, meaning: 'Glance answered 400' },
  GLANCE_INVALID_LOCATION: { exit: 1, meaning: 'Glance answered 400 to a location (the RBD image or snapshot is missing)' },
  GLANCE_RANGE_NOT_SUPPORTED: { exit: 1, meaning: 'Glance cannot serve a range of this image' },
  GLANCE_SERVER_ERROR: { exit: 1, meaning: 'Glance answered 5xx' },
  GLANCE_TIMEOUT: { exit: 1, meaning: 'Glance did not answer within the timeout' },
  GLANCE_UNAVAILABLE: { exit: 1, meaning: 'Glance could not be reached' },
  GLANCE_NO_DATA: { exit: 1, meaning: 'Glance served no data: the stored data behind the image is gone' },
  GLANCE_REQUEST_FAILED: { exit: 1, meaning: 'the request to Glance failed before an answer' },
  GLANCE_INVALID_RESPONSE: { exit: 1, meaning: 'Glance answered something the client cannot read' },
  GLANCE_TOKEN_UNAVAILABLE: { exit: 1, meaning: 'no token could be obtained for Glance' },
  GLANCE_OUTCOME_UNKNOWN: {
    exit: 1,
    meaning: 'a location call got no clear answer and reading the image back did not tell whether Glance applied it; the data is kept for gc',
  },
  GLANCE_LOCATION_IMPORT_FAILED: { exit: 1, meaning: "Glance's location task (image API 2.17) failed and left the image queued without the location" },
  GLANCE_LOCATION_FSID_MISMATCH: { exit: 1, meaning: 'Glance would record a location in another cluster than the one the data is in' },
} as const satisfies Record<string, { exit: 1 | 2; meaning: string }>;

export type ErrorCode = keyof typeof ERROR_CATALOG;

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERROR_CATALOG, code);
}

export interface ErrorContext {
  [key: string]: string | number | boolean | null | undefined | string[];
}

export interface ErrorOptions {
  cause?: unknown;
  context?: ErrorContext;
}

export class SnapstoreError extends Error {
  /** Stable machine-readable code from {@link ERROR_CATALOG}, e.g. `NOT_FOUND`, `BAD_LOCATION`. */
  readonly code: ErrorCode;
  readonly context: ErrorContext;

  constructor(code: ErrorCode, message: string, options: ErrorOptions = {}) {
    super(redactSecrets(message), options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.context = redactContext(options.context ?? {});
  }

  /** The exit status the `snapstore` command ends with for this error (see {@link ERROR_CATALOG}). */
  get exitCode(): 1 | 2 {
    return ERROR_CATALOG[this.code].exit;
  }

  toJSON(): { name: string; code: ErrorCode; message: string; context: ErrorContext } {
    return { name: this.name, code: this.code, message: this.message, context: this.context };
  }
}

/** snapstore has a bug, or something threw that no catalog code describes; `cause` has the original. */
export class InternalError extends SnapstoreError {
  constructor(message: string, options: ErrorOptions = {}) {
    super('INTERNAL', message, options);
  }
}

/** The `code` of an error (a catalog code, or a ceph-rbd-napi / Node code), or undefined. */
export function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * Whether `err` or any error in its `cause` chain carries one of `codes` (catalog codes, or the native
 * layer's codes such as ceph-rbd-napi's `BUSY`). Store and step errors wrap the native one, so callers ask
 * this rather than looking at `err.code` alone.
 */
export function hasCode(err: unknown, ...codes: readonly string[]): boolean {
  const seen = new Set<unknown>();
  for (let e: unknown = err; e !== null && e !== undefined && !seen.has(e); e = (e as { cause?: unknown }).cause) {
    seen.add(e);
    const code = codeOf(e);
    if (code !== undefined && codes.includes(code)) return true;
    if (typeof e !== 'object') break;
  }
  return false;
}

/** Any thrown value as a SnapstoreError: itself when it is one, else INTERNAL with the original as cause. */
export function asSnapstoreError(err: unknown): SnapstoreError {
  if (err instanceof SnapstoreError) return err;
  return new InternalError(err instanceof Error ? err.message : String(err), { cause: err });
}

/** The exit status for any error: its catalog class, 1 for anything else. */
export function exitCodeFor(err: unknown): 1 | 2 {
  return err instanceof SnapstoreError ? err.exitCode : 1;
}

/** cephx keys are base64 of 28 bytes (40 characters ending in ==). */
const CEPHX_KEY = /[A-Za-z0-9+/]{38}==/g;
/**
 * Userinfo in URLs: scheme://user:secret@host, scheme://:secret@host, scheme://token@host; a password may
 * itself contain `@`, so the userinfo runs to the last `@` before the host's `/`.
 */
const URL_USERINFO = /(\b[a-z][a-z0-9+.-]*:\/\/)[^/\s]*@/gi;
/** Tokens, passwords and keys in headers, query strings and config text. */
const NAMED_SECRET = /(x-auth-token|x-subject-token|x-service-token|token|password|passwd|key|secret)(["']?\s*[:=]\s*["']?)[^\s"',&;]+/gi;

/** Removes cephx keys, URL credentials and token/password values from a text meant for humans. */
export function redactSecrets(text: string): string {
  return text
    .replace(CEPHX_KEY, '[redacted]')
    .replace(URL_USERINFO, '$1[redacted]@')
    .replace(NAMED_SECRET, '$1$2[redacted]');
}

function redactContext(context: ErrorContext): ErrorContext {
  const out: ErrorContext = {};
  for (const [key, value] of Object.entries(context)) {
    if (typeof value === 'string') out[key] = redactSecrets(value);
    else if (Array.isArray(value)) out[key] = value.map(redactSecrets);
    else out[key] = value;
  }
  return out;
}
