// Just enough rbd:// parsing to check which cluster a location names before Glance sees it. Glance's rbd
// store accepts `rbd://fsid/pool/image/snap` and the legacy `rbd://image`, and never checks the fsid.
import { LocationFsidMismatch } from './errors.js';

export interface RbdLocationParts {
  fsid: string | null;
  pool: string | null;
  image: string;
  snapshot: string | null;
}

/** Splits an rbd:// URL into its percent-decoded parts; null when it is not one Glance would accept. */
export function parseRbdUrl(url: string): RbdLocationParts | null {
  const prefix = 'rbd://';
  if (!url.toLowerCase().startsWith(prefix)) return null;
  const rest = url.slice(prefix.length);
  if (rest.length === 0) return null;
  let pieces: string[];
  try {
    pieces = rest.split('/').map((p) => decodeURIComponent(p));
  } catch {
    return null;
  }
  if (pieces.some((p) => p.length === 0)) return null;
  if (pieces.length === 1) return { fsid: null, pool: null, image: pieces[0]!, snapshot: null };
  if (pieces.length === 4) {
    const [fsid, pool, image, snapshot] = pieces as [string, string, string, string];
    return { fsid, pool, image, snapshot };
  }
  return null;
}

/** Throws LocationFsidMismatch unless `url` is an rbd:// location on the cluster with `expectedFsid`. */
export function assertRbdLocationFsid(url: string, expectedFsid: string): void {
  const parts = parseRbdUrl(url);
  if (!parts) {
    throw new LocationFsidMismatch(
      url,
      expectedFsid,
      null,
      `refusing to register a location that is not rbd://fsid/pool/image/snap while expecting cluster ${expectedFsid}`,
    );
  }
  if (parts.fsid === null || parts.fsid.toLowerCase() !== expectedFsid.toLowerCase()) {
    throw new LocationFsidMismatch(url, expectedFsid, parts.fsid);
  }
}
