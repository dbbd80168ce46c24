// How gc removes what it found, and which connection it uses for which cluster.
import type { CephCluster, Ioctx } from '../../ceph/index.js';
import { isPermission } from '../classify.js';
import { lockCookie } from '../names.js';
import { ignoreNotFound, removeImageFully, removeSnapshot, whileBusy, withImage } from '../rbd-util.js';
import { parseSource } from '../source.js';
import type { Sessions } from './scan.js';

/**
 * A killed process's watch on an image lingers until the OSD times it out (osd_client_watch_timeout, 30 s
 * by default), and until then librbd refuses to remove the image (EBUSY). Clones carry a lock whose
 * breaking ends that at once; for anything else gc waits this long, no longer.
 */
const WATCH_WAIT = { attempts: 45, delayMs: 1000, backoff: false };

/** Removes an image snapstore made, waiting out the watch of a killed process. */
export function removeImage(io: Ioctx, name: string): Promise<void> {
  return whileBusy(() => removeImageFully(io, name), WATCH_WAIT);
}

/** Breaks the run's lock on its clone (librbd blocklists the dead holder, ending its watch), then removes it. */
export async function removeClone(io: Ioctx, name: string, runId: string): Promise<void> {
  const exists = await withImage(io, name, {}, false, async (image) => {
    for (const locker of await image.listLockers()) {
      if (locker.cookie === lockCookie(runId)) await ignoreNotFound(image.breakLock(locker.client, locker.cookie));
    }
    return true;
  });
  if (exists) await removeImage(io, name);
}

export async function removeSourceSnapshot(io: Ioctx, image: string, snap: string): Promise<void> {
  await withImage(io, image, {}, undefined, (handle) => whileBusy(() => removeSnapshot(handle, snap), WATCH_WAIT));
}

/** The sessions connected to cluster `fsid`, the source user's first. */
export function sessionsFor(fsid: string, sessions: Sessions): CephCluster[] {
  return [sessions.source, sessions.target].filter((s): s is CephCluster => s !== null && s.fsid === fsid);
}

/** Runs `fn` with the first session allowed to (the source user made clones, the target user copies). */
export async function withSessions(list: CephCluster[], fn: (s: CephCluster) => Promise<void>): Promise<void> {
  let denied: unknown;
  for (const s of list) {
    try {
      return await fn(s);
    } catch (err) {
      if (!isPermission(err)) throw err;
      denied = err;
    }
  }
  throw denied;
}

/** The session and pool/image a clone marker's `source` names, when gc can reach that cluster. */
export function markedSource(source: string, sessions: Sessions): { session: CephCluster; pool: string; image: string } | null {
  try {
    const src = parseSource(source, undefined);
    if (src.kind !== 'rbd' || src.fsid === null) return null;
    const session = sessionsFor(src.fsid, sessions)[0];
    return session ? { session, pool: src.pool, image: src.image } : null;
  } catch {
    return null;
  }
}

/**
 * The session gc reads the target pool with. A clone opens its parent, which only the source user (who
 * made it) may read: in the source cluster its session goes first.
 */
export function targetPoolReader(sessions: Sessions): CephCluster | null {
  const { source, target } = sessions;
  return source && target && source.fsid === target.fsid ? source : target;
}
