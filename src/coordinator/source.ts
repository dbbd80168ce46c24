// What a SOURCE string names: an instance disk, an existing snapshot of one, or a raw file.
//
//   rbd://<fsid>/<pool>/<image>          the disk (snapstore takes its own point-in-time snapshot)
//   rbd://<fsid>/<pool>/<image>/<snap>   an existing snapshot (used as is, never changed)
//   file:///<path>                       a raw file
//
// For the command line, the rbd CLI's own spelling is accepted too: `pool/image[@snap]`, or a bare `image`
// in the configured source pool; those take the fsid of the configured cluster.
import { isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BadSourceError } from './errors.js';

export type Source =
  | { kind: 'rbd'; fsid: string | null; pool: string; image: string; snap: string | null }
  | { kind: 'file'; path: string };

// librbd refuses '/' and '@' in names it parses from specs; an empty part is always a mistake.
const RBD_NAME = /^[^/@\s][^/@]*$/;

function decode(part: string, source: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new BadSourceError(`source ${JSON.stringify(source)} has a malformed %-escape`, { source });
  }
}

function checkName(what: string, name: string, source: string): string {
  if (!RBD_NAME.test(name) || name.length > 255) {
    throw new BadSourceError(`source ${JSON.stringify(source)}: ${what} ${JSON.stringify(name)} is not a valid RBD name`, {
      source,
    });
  }
  return name;
}

export function parseSource(source: string, defaultPool: string | undefined): Source {
  if (typeof source !== 'string' || source.trim() === '') {
    throw new BadSourceError('the source is empty; give rbd://fsid/pool/image[/snap] or file:///path');
  }
  const lower = source.toLowerCase();
  if (lower.startsWith('file:')) {
    let path: string;
    try {
      path = fileURLToPath(source);
    } catch (err) {
      throw new BadSourceError(`source ${JSON.stringify(source)} is not a valid file:// URL (${(err as Error).message})`, {
        source,
      });
    }
    return { kind: 'file', path };
  }
  if (lower.startsWith('rbd://')) {
    const parts = source.slice('rbd://'.length).split('/').map((p) => decode(p, source));
    if (parts.length !== 3 && parts.length !== 4) {
      throw new BadSourceError(
        `source ${JSON.stringify(source)} is not rbd://fsid/pool/image or rbd://fsid/pool/image/snap`,
        { source },
      );
    }
    const [fsid, pool, image, snap] = parts as [string, string, string, string | undefined];
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(fsid)) {
      throw new BadSourceError(`source ${JSON.stringify(source)}: ${JSON.stringify(fsid)} is not a cluster fsid`, { source });
    }
    return {
      kind: 'rbd',
      fsid: fsid.toLowerCase(),
      pool: checkName('pool', pool, source),
      image: checkName('image', image, source),
      snap: snap === undefined ? null : checkName('snapshot', snap, source),
    };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(source)) {
    throw new BadSourceError(`source ${JSON.stringify(source)}: only rbd:// and file:// sources are supported`, { source });
  }
  if (isAbsolute(source)) {
    throw new BadSourceError(`source ${JSON.stringify(source)} looks like a path; write it as file://${source}`, { source });
  }
  // rbd CLI spec: [pool/]image[@snap]
  const at = source.indexOf('@');
  const spec = at < 0 ? source : source.slice(0, at);
  const snap = at < 0 ? null : source.slice(at + 1);
  const slash = spec.split('/');
  if (slash.length > 2) {
    throw new BadSourceError(`source ${JSON.stringify(source)} is not pool/image[@snap]`, { source });
  }
  const pool = slash.length === 2 ? slash[0]! : defaultPool;
  if (!pool) {
    throw new BadSourceError(`source ${JSON.stringify(source)} names no pool and no default source pool is configured`, {
      source,
    });
  }
  return {
    kind: 'rbd',
    fsid: null,
    pool: checkName('pool', pool, source),
    image: checkName('image', slash[slash.length - 1]!, source),
    snap: snap === null ? null : checkName('snapshot', snap, source),
  };
}

/** The canonical spelling: `rbd://fsid/pool/image[/snap]` or `file:///path`. */
export function formatSource(src: Source, fsid?: string): string {
  if (src.kind === 'file') return `file://${encodeURI(src.path)}`;
  const parts = [src.fsid ?? fsid ?? '', src.pool, src.image, ...(src.snap === null ? [] : [src.snap])];
  return `rbd://${parts.map(encodeURIComponent).join('/')}`;
}
