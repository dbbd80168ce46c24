// What a SOURCE string names: an instance disk, an existing snapshot of one, or a raw file. The grammar is
// src/location.ts (parseSourceLocation); this gives it the coordinator's shape and the BAD_SOURCE code.
//
//   rbd://<fsid>/<pool>/<image>          the disk (snapstore takes its own point-in-time snapshot)
//   rbd://<fsid>/<pool>/<image>/<snap>   an existing snapshot (used as is, never changed)
//   file:///<path>                       a raw file
//   [<pool>/]<image>[@<snap>]            the rbd CLI's spelling, on the configured cluster and source pool
import { formatSourceLocation, parseSourceLocation, type SourceLocation } from '../location.js';
import { BadLocation } from '../store.js';
import { BadSourceError } from './errors.js';

export type Source =
  | { kind: 'rbd'; fsid: string | null; pool: string; image: string; snap: string | null }
  | { kind: 'file'; path: string };

function asBadSource(err: unknown, source: string): unknown {
  if (!(err instanceof BadLocation)) return err;
  const reason = typeof err.context.reason === 'string' ? { reason: err.context.reason } : {};
  return new BadSourceError(err.message.replace(/^invalid (location|source)/, 'invalid source'), {
    source: typeof source === 'string' ? source : typeof source,
    ...reason,
  });
}

/** Reads a SOURCE; `defaultPool` is the pool of the rbd CLI spelling without one. @throws BadSourceError. */
export function parseSource(source: string, defaultPool: string | undefined): Source {
  let loc: SourceLocation;
  try {
    loc = parseSourceLocation(source, defaultPool);
  } catch (err) {
    throw asBadSource(err, source);
  }
  if (loc.scheme !== 'rbd') return { kind: 'file', path: loc.path };
  return { kind: 'rbd', fsid: loc.fsid, pool: loc.pool, image: loc.image, snap: loc.snapshot };
}

/**
 * The canonical spelling: `rbd://fsid/pool/image[/snap]` (`fsid` stands in for the source's own when it has
 * none), `pool/image[@snap]` when neither is known, or `file:///path`. @throws BadSourceError.
 */
export function formatSource(src: Source, fsid?: string): string {
  const loc: SourceLocation =
    src.kind === 'file'
      ? { scheme: 'file', path: src.path }
      : { scheme: 'rbd', fsid: src.fsid ?? fsid ?? null, pool: src.pool, image: src.image, snapshot: src.snap };
  try {
    return formatSourceLocation(loc);
  } catch (err) {
    throw asBadSource(err, src.kind === 'file' ? src.path : `${src.pool}/${src.image}`);
  }
}
