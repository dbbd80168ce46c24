// How gc removes what it found on the source side.
import type { CephCluster, Ioctx } from '../../ceph/index.js';
import { pairKey } from '../incremental/pairing.js';
import { ignoreNotFound, removeImageFully, removeSnapshot, whileBusy, withImage } from '../rbd-util.js';
import { isRbdSource } from '../source-kind.js';
import { parseSource } from '../source.js';

/**
 * A killed process's watch on an image lingers until the OSD times it out (osd_client_watch_timeout, 30 s
 * by default), and until then librbd refuses to remove the image (EBUSY): gc waits this long, no longer.
 */
const WATCH_WAIT = { attempts: 45, delayMs: 1000, backoff: false };

/** Removes an image snapstore made, waiting out the watch of a killed process. */
export function removeImage(io: Ioctx, name: string): Promise<void> {
  return whileBusy(() => removeImageFully(io, name), WATCH_WAIT);
}

export async function removeSourceSnapshot(io: Ioctx, image: string, snap: string): Promise<void> {
  await withImage(io, image, {}, undefined, async (handle) => {
    await whileBusy(() => removeSnapshot(handle, snap), WATCH_WAIT);
    // A run killed after recording its common point's pairing (incremental snapshots) leaves that too.
    await ignoreNotFound(handle.metadataRemove(pairKey(snap)));
  });
}

/** The pool/image a marker's `source` names, when it is a disk in the cluster gc's source session reaches. */
export function markedSource(source: string, session: CephCluster | null): { session: CephCluster; pool: string; image: string } | null {
  if (!session) return null;
  try {
    const src = parseSource(source, undefined);
    if (!isRbdSource(src) || src.fsid !== session.fsid) return null;
    return { session, pool: src.pool, image: src.image };
  } catch {
    return null;
  }
}

/**
 * The pool clones (and `check`'s probes) go to, through the source session — when the store holds clones
 * and lives in the source's cluster (else no run of this configuration made any there).
 */
export async function clonePool(session: CephCluster | null, where: { fsid: string; pool: string } | null): Promise<Ioctx | null> {
  if (!session || !where || where.fsid !== session.fsid) return null;
  return session.pool(where.pool);
}
