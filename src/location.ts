// The one grammar of location strings: what stores return and Glance records (`locations`, `direct_url`),
// and what the SOURCE of a snapshot names. Every parser and formatter of `rbd://` and `file://` text in
// snapstore is here; drivers, the coordinator and the Glance client call these.
//
//   rbd://<fsid>/<pool>/<image>/<snap>  an image at a snapshot: glance_store's rbd StoreLocation. Each part is
//                                      quoted like Python's `urllib.parse.quote(part, '')` (only A-Z a-z 0-9
//                                      `_.-~` stay literal); parsing takes any valid %XX escape.
//   rbd://<image>                      glance_store's legacy form (its default pool, the image head). glance_store
//                                      does not unquote it, so only unreserved characters are accepted here.
//   rbd://<fsid>/<pool>/<image>        the image head: a SOURCE only (glance_store takes 1 or 4 parts, never 3,
//                                      and never `rbd://pool/image/snap` without the fsid).
//   file:///<absolute path>            glance_store's filesystem StoreLocation (`filesystem://` too): `file://`
//                                      + the path as is. glance_store never unquotes it while RFC 8089 readers
//                                      do, so a `%` is refused rather than read one way or the other.
//   [<pool>/]<image>[@<snap>]          the rbd CLI's spelling: a SOURCE only, on the configured cluster.
//
// Strict: anything else, or ambiguous, is a BadLocation (never a URIError): control characters and NUL,
// non-ASCII (librbd takes ASCII names), userinfo, queries, fragments, `.`/`..`, empty parts, bad escapes,
// upper-case schemes (glance_store compares schemes exactly). Round trip: formatting what was parsed gives the
// input back for every canonical form (upper-case hex and `~` unquoted; a source's fsid in lower case).
import { redactSecrets } from './errors.js';
import { BadLocation, InvalidImageId } from './store.js';

/** An RBD location. Full form: every field set. Legacy `rbd://<image>`: fsid, pool and snapshot null. */
export interface RbdLocation {
  scheme: 'rbd';
  fsid: string | null;
  pool: string | null;
  image: string;
  /** null: the image head (legacy locations, and sources naming a disk). */
  snapshot: string | null;
}

export interface FileLocation {
  /** glance_store accepts both spellings; the one parsed is kept so formatting round-trips. */
  scheme: 'file' | 'filesystem';
  /** Absolute, normalised path (no `.`/`..`/empty segments). */
  path: string;
}

export type Location = RbdLocation | FileLocation;

/** An RBD SOURCE always has a pool; its fsid is null when written the rbd CLI's way (the configured cluster). */
export interface RbdSourceLocation extends RbdLocation {
  pool: string;
}

export type SourceLocation = RbdSourceLocation | FileLocation;

/** Longest location string accepted (Linux PATH_MAX plus room for a scheme). */
export const MAX_LOCATION_LENGTH = 4096 + 16;
/** Longest single path segment or RBD component, decoded (NAME_MAX). */
export const MAX_COMPONENT_LENGTH = 255;

const UNRESERVED = /^[A-Za-z0-9_.~-]$/;
const HEX = /^[0-9A-Fa-f]{2}$/;
const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):/;
const USERINFO = /^([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^/]*@/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Where a string is read: a stored image's location, or the SOURCE of a snapshot (see the file comment). */
type Role = 'location' | 'source';

function show(text: string): string {
  // Never echo credentials: a URL with userinfo is shown without anything after the scheme.
  const userinfo = USERINFO.exec(text);
  const safe = userinfo ? `${userinfo[1]}[redacted]` : redactSecrets(text);
  const cut = safe.length > 120 ? `${safe.slice(0, 120)}…` : safe;
  return JSON.stringify(cut);
}

function bad(input: string, reason: string, role: Role = 'location'): BadLocation {
  return new BadLocation(`invalid ${role} ${show(input)}: ${reason}`, { context: { [role]: show(input), reason } });
}

function notString(input: unknown, role: Role): BadLocation {
  const reason = input === '' ? 'empty' : `expected a string, got ${input === null ? 'null' : typeof input}`;
  return new BadLocation(`invalid ${role}: ${reason}`, { context: { reason } });
}

function isControl(c: number): boolean {
  return c < 0x20 || c === 0x7f;
}

/** Rejects what no location may contain, whatever its scheme. */
function checkCharacters(input: string, role: Role): void {
  if (input.length > MAX_LOCATION_LENGTH) throw bad(input, `longer than ${MAX_LOCATION_LENGTH} characters`, role);
  for (let i = 0; i < input.length; i++) {
    const c = input.charCodeAt(i);
    if (isControl(c)) throw bad(input, 'contains a control character', role);
    if (c > 0x7e) throw bad(input, 'contains a non-ASCII character', role);
  }
  if (USERINFO.test(input)) throw bad(input, 'contains credentials (userinfo)', role);
  if (input.includes('?')) throw bad(input, 'has a query', role);
  if (input.includes('#')) throw bad(input, 'has a fragment', role);
}

/** Python's `urllib.parse.quote(part, safe='')` for ASCII text. */
export function quotePart(part: string): string {
  let out = '';
  for (const ch of part) {
    out += UNRESERVED.test(ch) ? ch : `%${ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Percent-decodes one part strictly: every `%` starts two hex digits, everything else is unreserved. */
function unquotePart(input: string, raw: string, what: string, role: Role): string {
  let out = '';
  for (let i = 0; i < raw.length; i++) {
    const ch = raw.charAt(i);
    if (ch === '%') {
      const hex = raw.slice(i + 1, i + 3);
      if (!HEX.test(hex)) throw bad(input, `${what} has a malformed percent escape`, role);
      out += String.fromCharCode(Number.parseInt(hex, 16));
      i += 2;
    } else if (UNRESERVED.test(ch)) {
      out += ch;
    } else {
      throw bad(input, `${what} contains ${JSON.stringify(ch)} unquoted`, role);
    }
  }
  return checkComponent(input, out, what, role);
}

/** One decoded RBD name (fsid, pool, image, snapshot): what librbd and a round trip can take. */
function checkComponent(input: string, value: string, what: string, role: Role): string {
  if (value === '') throw bad(input, `${what} is empty`, role);
  if (value.length > MAX_COMPONENT_LENGTH) throw bad(input, `${what} is longer than ${MAX_COMPONENT_LENGTH} characters`, role);
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (isControl(c)) throw bad(input, `${what} contains a control character`, role);
    if (c > 0x7e) throw bad(input, `${what} contains a non-ASCII character (librbd takes ASCII names)`, role);
  }
  if (value === '.' || value === '..') throw bad(input, `${what} is "${value}"`, role);
  if (value.trim() !== value) throw bad(input, `${what} starts or ends with white space`, role);
  return value;
}

function parseRbd(input: string, role: Role): RbdLocation {
  const pieces = input.slice('rbd://'.length).split('/');
  const [first, pool, image, snapshot] = pieces;
  if (pieces.length === 1 && first !== undefined) {
    if (role === 'source') throw bad(input, 'names no cluster and pool (want rbd://fsid/pool/image[/snap])', role);
    if (first === '') throw bad(input, 'has no image name', role);
    for (const ch of first) {
      if (!UNRESERVED.test(ch)) throw bad(input, `legacy image name contains ${JSON.stringify(ch)}`, role);
    }
    return { scheme: 'rbd', fsid: null, pool: null, image: checkComponent(input, first, 'image', role), snapshot: null };
  }
  if (pieces.length === 3 && role === 'location') {
    throw bad(input, 'must have 1 or 4 components, has 3 (rbd://fsid/pool/image is only accepted as a source)', role);
  }
  if ((pieces.length !== 3 && pieces.length !== 4) || first === undefined || pool === undefined || image === undefined) {
    const want = role === 'source' ? '3 (the image head) or 4' : '1 or 4';
    throw bad(input, `must have ${want} components, has ${pieces.length}`, role);
  }
  let fsid = unquotePart(input, first, 'fsid', role);
  if (role === 'source') {
    // A source's fsid picks the cluster to connect to: it must be one, and Ceph prints it in lower case.
    if (!UUID.test(fsid)) throw bad(input, `${JSON.stringify(fsid)} is not a cluster fsid`, role);
    fsid = fsid.toLowerCase();
  }
  return {
    scheme: 'rbd',
    fsid,
    pool: unquotePart(input, pool, 'pool', role),
    image: unquotePart(input, image, 'image', role),
    snapshot: snapshot === undefined ? null : unquotePart(input, snapshot, 'snapshot', role),
  };
}

function parseFile(input: string, scheme: 'file' | 'filesystem', role: Role): FileLocation {
  const path = input.slice(`${scheme}://`.length);
  if (path === '' || path === '/') throw bad(input, 'has no path', role);
  if (!path.startsWith('/')) throw bad(input, 'path is not absolute (want file:///absolute/path)', role);
  if (path.includes('%')) {
    throw bad(input, 'path contains "%" (glance_store reads it literally, file:// URL readers decode it)', role);
  }
  for (const segment of path.slice(1).split('/')) {
    if (segment === '') throw bad(input, 'path has an empty segment or a trailing slash', role);
    if (segment === '.' || segment === '..') throw bad(input, `path has a "${segment}" segment`, role);
    if (segment.length > MAX_COMPONENT_LENGTH) throw bad(input, `path segment longer than ${MAX_COMPONENT_LENGTH} characters`, role);
  }
  if (path.trim() !== path) throw bad(input, 'path starts or ends with white space', role);
  return { scheme, path };
}

function parseUrl(input: unknown, role: Role): Location {
  if (typeof input !== 'string' || input === '') throw notString(input, role);
  checkCharacters(input, role);
  if (input.startsWith('rbd://')) return parseRbd(input, role);
  if (input.startsWith('file://')) return parseFile(input, 'file', role);
  if (input.startsWith('filesystem://')) return parseFile(input, 'filesystem', role);
  const scheme = SCHEME.exec(input)?.[1];
  if (!scheme) throw bad(input, 'has no scheme', role);
  const known = ['rbd', 'file', 'filesystem'].find((k) => k === scheme.toLowerCase());
  if (known === undefined) throw bad(input, `scheme "${scheme}" is not supported (rbd, file)`, role);
  throw bad(input, known === scheme ? `want ${known}:// (two slashes)` : `want ${known}:// (schemes are lower case)`, role);
}

/**
 * Parses a stored-image location: `rbd://fsid/pool/image/snap`, legacy `rbd://image`, or
 * `file:///abs/path` (`filesystem://` too). @throws BadLocation for anything else.
 */
export function parseLocation(input: string): Location {
  return parseUrl(input, 'location');
}

/** Like parseLocation, but only RBD locations. */
export function parseRbdLocation(input: string): RbdLocation {
  const loc = parseUrl(input, 'location');
  if (loc.scheme !== 'rbd') throw bad(input, 'is not an rbd:// location');
  return loc;
}

/** Like parseLocation, but only file locations. */
export function parseFileLocation(input: string): FileLocation {
  const loc = parseUrl(input, 'location');
  if (loc.scheme === 'rbd') throw bad(input, 'is not a file:// location');
  return loc;
}

/** The rbd CLI's `[pool/]image[@snap]`; `defaultPool` stands in for a missing pool. */
function parseRbdSpec(input: string, defaultPool: string | undefined): RbdSourceLocation {
  checkCharacters(input, 'source');
  const [spec = '', snapshot, ...moreAt] = input.split('@');
  const [first = '', second, ...moreSlash] = spec.split('/');
  if (moreAt.length > 0 || moreSlash.length > 0) throw bad(input, 'is not [pool/]image[@snap]', 'source');
  const pool = second === undefined ? defaultPool : first;
  if (pool === undefined) throw bad(input, 'names no pool and no default source pool is configured', 'source');
  return {
    scheme: 'rbd',
    fsid: null,
    pool: checkComponent(input, pool, 'pool', 'source'),
    image: checkComponent(input, second ?? first, 'image', 'source'),
    snapshot: snapshot === undefined ? null : checkComponent(input, snapshot, 'snapshot', 'source'),
  };
}

/**
 * Parses the SOURCE of a snapshot: `rbd://fsid/pool/image` (the disk), `rbd://fsid/pool/image/snap` (an
 * existing snapshot), `file:///path`, or the rbd CLI's `[pool/]image[@snap]` on the configured cluster.
 * @throws BadLocation (callers turn it into their own code, e.g. BAD_SOURCE).
 */
export function parseSourceLocation(input: string, defaultPool?: string): SourceLocation {
  if (typeof input !== 'string' || input.trim() === '') throw notString(typeof input === 'string' ? '' : input, 'source');
  if (SCHEME.test(input)) {
    const loc = parseUrl(input, 'source');
    if (loc.scheme !== 'rbd') return loc;
    // As a source, parseRbd refuses the legacy form: the pool is always there.
    if (loc.pool === null) throw bad(input, 'names no pool', 'source');
    return { ...loc, pool: loc.pool };
  }
  if (input.startsWith('/')) throw bad(input, `looks like a path; write it as file://${input}`, 'source');
  return parseRbdSpec(input, defaultPool);
}

function sameFields(a: object, b: object): boolean {
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  return Object.keys(x).length === Object.keys(y).length && Object.keys(x).every((k) => x[k] === y[k]);
}

function formatRbd(loc: RbdLocation): string {
  const { fsid, pool, image, snapshot } = loc;
  if (fsid === null && pool === null && snapshot === null) return `rbd://${image}`;
  if (fsid !== null && pool !== null) {
    return `rbd://${[fsid, pool, image, ...(snapshot === null ? [] : [snapshot])].map(quotePart).join('/')}`;
  }
  throw new BadLocation('cannot format an rbd location with only some of fsid, pool and snapshot');
}

/**
 * Formats a location exactly as glance_store does (an RBD location without a snapshot as a source's
 * `rbd://fsid/pool/image`). @throws BadLocation when the text would not parse back to `loc`.
 */
export function formatLocation(loc: Location): string {
  const out = loc.scheme === 'rbd' ? formatRbd(loc) : `${loc.scheme}://${loc.path}`;
  const role: Role = loc.scheme === 'rbd' && loc.fsid !== null && loc.snapshot === null ? 'source' : 'location';
  if (!sameFields(parseUrl(out, role), loc)) throw bad(out, 'does not parse back to what was formatted');
  return out;
}

/** `rbd://<fsid>/<pool>/<image>/<snapshot>`, quoted like glance_store. */
export function formatRbdLocation(fsid: string, pool: string, image: string, snapshot: string): string {
  return formatLocation({ scheme: 'rbd', fsid, pool, image, snapshot });
}

/** `file://<path>`. */
export function formatFileLocation(path: string): string {
  return formatLocation({ scheme: 'file', path });
}

/**
 * The canonical text of a source: `rbd://fsid/pool/image[/snap]`, `file:///path`, or `pool/image[@snap]`
 * when the fsid is not known. @throws BadLocation when it would not parse back to `loc`.
 */
export function formatSourceLocation(loc: SourceLocation): string {
  if (loc.scheme !== 'rbd' || loc.fsid !== null) return formatLocation(loc);
  const out = `${loc.pool}/${loc.image}${loc.snapshot === null ? '' : `@${loc.snapshot}`}`;
  let back: SourceLocation | null = null;
  try {
    back = parseSourceLocation(out);
  } catch {
    // Reported below: a name with '/' or '@' has no rbd CLI spelling.
  }
  if (back === null || !sameFields(back, loc)) throw bad(out, 'has no pool/image[@snap] spelling', 'source');
  return out;
}

/**
 * Checks that an image id can name an image in every backend: 1–255 characters from A-Z a-z 0-9 `_.-~`,
 * not starting with `.` (drivers keep temporary files as dot files). Glance's ids are UUIDs.
 * @throws InvalidImageId.
 */
export function checkImageId(imageId: unknown): string {
  if (typeof imageId !== 'string' || !/^[A-Za-z0-9_~-][A-Za-z0-9_.~-]{0,254}$/.test(imageId)) {
    const shown = typeof imageId === 'string' ? show(imageId) : typeof imageId;
    throw new InvalidImageId(
      `invalid image id ${shown}: want 1-255 characters from A-Z a-z 0-9 _ . - ~, not starting with "."`,
    );
  }
  return imageId;
}
