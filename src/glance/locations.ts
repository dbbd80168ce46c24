// Glance's side of locations: its `direct_url` and `locations` entries, and the cluster check before a
// location is registered (Glance's rbd store never checks the fsid). The grammar itself is src/location.ts.
import { redactSecrets } from '../errors.js';
import { type Location, parseLocation, parseRbdLocation, type RbdLocation } from '../location.js';
import { BadLocation } from '../store.js';
import { LocationFsidMismatch } from './errors.js';

export type RbdLocationParts = Omit<RbdLocation, 'scheme'>;

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

/** An rbd:// location's percent-decoded parts; null when it is not one (see src/location.ts). */
export function parseRbdUrl(url: string): RbdLocationParts | null {
  try {
    const { scheme: _, ...parts } = parseRbdLocation(url);
    return parts;
  } catch (err) {
    if (err instanceof BadLocation) return null;
    throw err;
  }
}

/**
 * Throws LocationFsidMismatch unless `url` is an rbd:// location on the cluster with `expectedFsid` (in any
 * case: Glance compares nothing). @throws BadLocation when `url` is not a location at all.
 */
export function assertRbdLocationFsid(url: string, expectedFsid: string): void {
  const loc = parseLocation(url);
  if (loc.scheme !== 'rbd' || loc.fsid === null) {
    throw new LocationFsidMismatch(
      url,
      expectedFsid,
      null,
      `refusing to register a location that is not rbd://fsid/pool/image/snap while expecting cluster ${expectedFsid}`,
    );
  }
  if (loc.fsid.toLowerCase() !== expectedFsid.toLowerCase()) throw new LocationFsidMismatch(url, expectedFsid, loc.fsid);
}

/** Glance's `direct_url` (shown with `show_image_direct_url = True`). @throws BadLocation. */
export function parseGlanceDirectUrl(directUrl: unknown): Location {
  if (typeof directUrl !== 'string') throw new BadLocation(`invalid direct_url: expected a string, got ${typeof directUrl}`);
  return parseLocation(directUrl);
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
    return { url, metadata: meta, location: parseLocation(url) };
  } catch (err) {
    if (err instanceof BadLocation) return { url: redactSecrets(url), metadata: meta, location: null, error: err };
    throw err;
  }
}

/** Every entry of a Glance image's `locations`, in order (see parseGlanceLocation). */
export function parseGlanceLocations(entries: unknown): ParsedGlanceLocation[] {
  if (!Array.isArray(entries)) throw new BadLocation('invalid Glance locations: expected an array');
  return entries.map(parseGlanceLocation);
}
