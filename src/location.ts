// Location strings as Glance records them. RBD follows glance_store's rbd StoreLocation: the full form
// `rbd://<fsid>/<pool>/<image>/<snap>` with each part percent-quoted like Python's
// `urllib.parse.quote(part, '')` (only A-Z a-z 0-9 `_.-~` stay literal), and the legacy `rbd://<image>`
// (default pool, image head, not quoted). Files follow the filesystem StoreLocation: `file://` + the absolute
// path as is (glance_store does not quote it). Parsing is strict: what parses formats back to the same string
// when the input was canonical, and anything ambiguous is a BadLocation.
import { redactSecrets } from './errors.js';
import { BadLocation, InvalidImageId } from './store.js';

/** An RBD location. Full form: every field set. Legacy `rbd://<image>`: fsid, pool and snapshot null. A source
 * (instance disk, parseRbdSource only) may have fsid and pool but no snapshot: the image head. */
export interface RbdLocation {
  scheme: 'rbd';
  fsid: string | null;
  pool: string | null;
  image: string;
  snapshot: string | null;
}

export interface FileLocation {
  /** glance_store accepts both spellings; the one parsed is kept so formatting round-trips. */
  scheme: 'file' | 'filesystem';
  /** Absolute, normalised path (no `.`/`..`/empty segments). */
  path: string;
}

export type Location = RbdLocation | FileLocation;

/** One entry of a Glance image's `locations` list. */
export interface GlanceLocationEntry {
  url: string;
  metadata: Record<string, unknown>;
}

export interface ParsedGlanceLocation extends GlanceLocationEntry {
  /** The parsed URL, or null when snapstore cannot use it (unknown scheme, malformed). */
  location: Location | null;
  /** Why `location` is null. */
  error?: BadLocation;
}

/** Longest location string accepted (Linux PATH_MAX plus room for a scheme). */
export const MAX_LOCATION_LENGTH = 4096 + 16;
/** Longest single path segment or RBD component, decoded (NAME_MAX). */
export const MAX_COMPONENT_LENGTH = 255;

const UNRESERVED = /^[A-Za-z0-9_.~-]$/;
const HEX = /^[0-9A-Fa-f]{2}$/;

function show(text: string): string {
  // Never echo credentials: a URL with userinfo is shown without anything after the scheme.
  const userinfo = /^([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^/]*@/.exec(text);
  const safe = userinfo ? `${userinfo[1]}[redacted]` : redactSecrets(text);
  const cut = safe.length > 120 ? `${safe.slice(0, 120)}…` : safe;
  return JSON.stringify(cut);
}

function bad(input: string, reason: string): BadLocation {
  return new BadLocation(`invalid location ${show(input)}: ${reason}`, { context: { location: show(input), reason } });
}

/** Rejects what no location may contain, whatever its scheme. */
function checkCharacters(input: string): void {
  if (input.length > MAX_LOCATION_LENGTH) throw bad(input, `longer than ${MAX_LOCATION_LENGTH} characters`);
  for (let i = 0; i < input.length; i++) {
    const c = input.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) throw bad(input, 'contains a control character');
    if (c > 0x7e) throw bad(input, 'contains a non-ASCII character');
  }
  if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/]*@/.test(input)) throw bad(input, 'contains credentials (userinfo)');
  if (input.includes('?')) throw bad(input, 'has a query');
  if (input.includes('#')) throw bad(input, 'has a fragment');
}

/** Python's `urllib.parse.quote(part, safe='')` for ASCII text. */
export function quotePart(part: string): string {
  let out = '';
  for (const ch of part) {
    out += UNRESERVED.test(ch) ? ch : `%${ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function unquotePart(input: string, raw: string, what: string): string {
  let out = '';
  for (let i = 0; i < raw.length; i++) {
    const ch = raw[i]!;
    if (ch === '%') {
      const hex = raw.slice(i + 1, i + 3);
      if (!HEX.test(hex)) throw bad(input, `${what} has a malformed percent escape`);
      out += String.fromCharCode(parseInt(hex, 16));
      i += 2;
    } else if (UNRESERVED.test(ch)) {
      out += ch;
    } else {
      throw bad(input, `${what} contains ${JSON.stringify(ch)} unquoted`);
    }
  }
  checkComponent(input, out, what);
  return out;
}

function checkComponent(input: string, value: string, what: string): void {
  if (value === '') throw bad(input, `${what} is empty`);
  if (value.length > MAX_COMPONENT_LENGTH) throw bad(input, `${what} is longer than ${MAX_COMPONENT_LENGTH} characters`);
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) throw bad(input, `${what} contains a control character`);
    if (c > 0x7e) throw bad(input, `${what} contains a non-ASCII character (librbd takes ASCII names)`);
  }
  if (value === '.' || value === '..') throw bad(input, `${what} is "${value}"`);
}

const RBD_PARTS = ['fsid', 'pool', 'image', 'snapshot'] as const;

function parseRbd(input: string, allowSource: boolean): RbdLocation {
  const pieces = input.slice('rbd://'.length).split('/');
  if (pieces.length === 1) {
    const image = pieces[0]!;
    if (image === '') throw bad(input, 'has no image name');
    for (const ch of image) {
      if (!UNRESERVED.test(ch)) throw bad(input, `legacy image name contains ${JSON.stringify(ch)}`);
    }
    checkComponent(input, image, 'image');
    return { scheme: 'rbd', fsid: null, pool: null, image, snapshot: null };
  }
  if (pieces.length === 4 || (allowSource && pieces.length === 3)) {
    const [fsid, pool, image, snapshot] = pieces.map((p, i) => unquotePart(input, p, RBD_PARTS[i]!));
    return { scheme: 'rbd', fsid: fsid!, pool: pool!, image: image!, snapshot: snapshot ?? null };
  }
  if (pieces.length === 3) {
    throw bad(input, 'names no snapshot (rbd://fsid/pool/image is only accepted as a source)');
  }
  throw bad(input, `must have ${allowSource ? '1, 3' : '1'} or 4 components, has ${pieces.length}`);
}

function parseFile(input: string, scheme: 'file' | 'filesystem'): FileLocation {
  const path = input.slice(`${scheme}://`.length);
  if (path === '' || path === '/') throw bad(input, 'has no path');
  if (!path.startsWith('/')) throw bad(input, 'path is not absolute (want file:///absolute/path)');
  const segments = path.slice(1).split('/');
  for (const segment of segments) {
    if (segment === '') throw bad(input, 'path has an empty segment or a trailing slash');
    if (segment === '.' || segment === '..') throw bad(input, `path has a "${segment}" segment`);
    if (segment.length > MAX_COMPONENT_LENGTH) throw bad(input, `path segment longer than ${MAX_COMPONENT_LENGTH} characters`);
  }
  if (/^\s|\s$/.test(path)) throw bad(input, 'path starts or ends with white space');
  return { scheme, path };
}

function parseAny(input: unknown, allowSource: boolean): Location {
  if (typeof input !== 'string') throw new BadLocation(`invalid location: expected a string, got ${typeof input}`);
  if (input === '') throw new BadLocation('invalid location: empty string', { context: { reason: 'empty' } });
  checkCharacters(input);
  if (input.startsWith('rbd://')) return parseRbd(input, allowSource);
  if (input.startsWith('file://')) return parseFile(input, 'file');
  if (input.startsWith('filesystem://')) return parseFile(input, 'filesystem');
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(input)?.[1];
  throw bad(input, scheme ? `scheme "${scheme}" is not supported (rbd, file)` : 'has no scheme');
}

/**
 * Parses a stored-image location: `rbd://fsid/pool/image/snap`, legacy `rbd://image`, or
 * `file:///abs/path` (`filesystem://` too). @throws BadLocation for anything else.
 */
export function parseLocation(input: string): Location {
  return parseAny(input, false);
}

/** Like parseLocation, but only RBD locations. */
export function parseRbdLocation(input: string): RbdLocation {
  const loc = parseAny(input, false);
  if (loc.scheme !== 'rbd') throw bad(input, 'is not an rbd:// location');
  return loc;
}

/**
 * Parses an RBD image to read from (an instance disk): also accepts `rbd://fsid/pool/image` with no
 * snapshot, meaning the image head. @throws BadLocation.
 */
export function parseRbdSource(input: string): RbdLocation {
  const loc = parseAny(input, true);
  if (loc.scheme !== 'rbd') throw bad(input, 'is not an rbd:// location');
  return loc;
}

export function parseFileLocation(input: string): FileLocation {
  const loc = parseAny(input, false);
  if (loc.scheme === 'rbd') throw bad(input, 'is not a file:// location');
  return loc;
}

/** Formats a location exactly as glance_store does. @throws BadLocation when a field could not be parsed back. */
export function formatLocation(loc: Location): string {
  let out: string;
  if (loc.scheme === 'rbd') {
    const { fsid, pool, image, snapshot } = loc;
    if (fsid === null && pool === null && snapshot === null) {
      out = `rbd://${image}`;
    } else if (fsid !== null && pool !== null) {
      const parts = snapshot === null ? [fsid, pool, image] : [fsid, pool, image, snapshot];
      out = `rbd://${parts.map(quotePart).join('/')}`;
    } else {
      throw new BadLocation('cannot format an rbd location with only some of fsid, pool and snapshot');
    }
    const parsed = parseAny(out, true) as RbdLocation;
    if (parsed.image !== image) throw bad(out, 'image name does not survive formatting');
  } else {
    out = `${loc.scheme}://${loc.path}`;
    const parsed = parseAny(out, false) as FileLocation;
    if (parsed.path !== loc.path) throw bad(out, 'path does not survive formatting');
  }
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

/** Glance's `direct_url` (shown with `show_image_direct_url = True`). */
export function parseGlanceDirectUrl(directUrl: unknown): Location {
  return parseAny(directUrl, false);
}

/**
 * One `locations[]` entry of a Glance image, `{url, metadata}`. A URL snapstore cannot use does not throw:
 * the entry comes back with `location: null` and the reason in `error` (Glance lists http, swift, … too).
 * @throws BadLocation only when the entry itself is not `{url: string, metadata?: object}`.
 */
export function parseGlanceLocation(entry: unknown): ParsedGlanceLocation {
  if (typeof entry !== 'object' || entry === null || typeof (entry as { url?: unknown }).url !== 'string') {
    throw new BadLocation('invalid Glance location entry: expected {url: string, metadata: object}');
  }
  const { url, metadata } = entry as { url: string; metadata?: unknown };
  if (metadata !== undefined && metadata !== null && (typeof metadata !== 'object' || Array.isArray(metadata))) {
    throw new BadLocation('invalid Glance location entry: metadata must be an object');
  }
  const meta = (metadata ?? {}) as Record<string, unknown>;
  try {
    return { url, metadata: meta, location: parseAny(url, false) };
  } catch (err) {
    if (err instanceof BadLocation) return { url: redactUrl(url), metadata: meta, location: null, error: err };
    throw err;
  }
}

/** Every entry of a Glance image's `locations`, in order (see parseGlanceLocation). */
export function parseGlanceLocations(entries: unknown): ParsedGlanceLocation[] {
  if (!Array.isArray(entries)) throw new BadLocation('invalid Glance locations: expected an array');
  return entries.map(parseGlanceLocation);
}

function redactUrl(url: string): string {
  return url.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^/]*@/, '$1[redacted]@');
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
