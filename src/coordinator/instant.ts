// Instant snapshots (`flatten: 'background'`): the snapshot is usable as soon as the clone and its `snap`
// exist, and the flatten happens later, in whatever process runs a Flattener. What makes that safe:
//
//  - clone format 2 only: the source snapshot is removed right away and moves to the snapshot trash, where
//    it lives exactly as long as a clone depends on it — librbd removes it when its last clone is flattened
//    or removed, and refuses (EBUSY) to remove it by id while a clone still uses it;
//  - the queue is RBD image metadata on the clone (`snapstore.flatten`), so it survives any process and is
//    visible to every flattener, and the clone dies with its queue entry;
//  - the clone is made with `layering,deep-flatten` only: deep-flatten lets flatten detach the clone's
//    `snap` from the source as well (without it the trashed snapshot would stay referenced for ever), and
//    without exclusive-lock the flattener's advisory RBD lock works;
//  - the source disk cannot be removed while a clone hangs from its trashed snapshot (librbd: "image has
//    snapshots"); `prepareSourceRemoval` says which images are pending, or flattens them first.
import type { CephCluster, Ioctx } from '../ceph/index.js';
import { SnapstoreError, codeOf } from '../errors.js';
import { isNotFound, isPermission } from './classify.js';
import { mgrFlattenCheck } from './mgr-flatten.js';
import { runIdOfSnap } from './names.js';
import { withImage } from './rbd-util.js';
import type { PlanFacts } from './plan.js';
import { clonesGoTo } from './target-facts.js';
import { isRbdSource } from './source-kind.js';
import { formatSource, type Source } from './source.js';
import type { InstantCheck } from './types.js';

/** Metadata key on a clone whose flatten is still to be done; its value is a {@link FlattenRequest}. */
export const FLATTEN_KEY = 'snapstore.flatten';

/** Features of a background clone (see above): never exclusive-lock, always deep-flatten. */
export const INSTANT_CLONE_FEATURES = ['layering', 'deep-flatten'];

/** The queue entry a background snapshot leaves on its clone. */
export interface FlattenRequest {
  v: 1;
  requestedAt: string;
  runId: string;
  /** `rbd://fsid/pool/image` of the disk the clone was taken from. */
  source: string;
  /** The snapshot snapstore took (now in the source's snapshot trash), or null for an existing snapshot. */
  sourceSnap: string | null;
  /** The ceph-mgr task that flattens it (mgr-flatten.ts); absent when snapstore's flattener must. */
  mgrTask?: { id: string; queuedAt: string };
}

export function encodeFlattenRequest(req: FlattenRequest): string {
  return JSON.stringify(req);
}

/** A queue entry read back from Ceph; null for anything snapstore did not write. */
export function decodeFlattenRequest(text: string | null): FlattenRequest | null {
  if (!text) return null;
  try {
    const r = JSON.parse(text) as FlattenRequest;
    if (r?.v !== 1 || typeof r.runId !== 'string' || typeof r.source !== 'string' || typeof r.requestedAt !== 'string') return null;
    if (r.sourceSnap !== null && typeof r.sourceSnap !== 'string') return null;
    if (r.mgrTask !== undefined && (typeof r.mgrTask?.id !== 'string' || typeof r.mgrTask.queuedAt !== 'string')) return null;
    return r;
  } catch {
    return null;
  }
}

/** Images snapstore made that still depend on the source disk: removing the disk must wait. */
export class SourceInUseError extends SnapstoreError {
  constructor(message: string, context: { source: string; clones: string[] }) {
    super('IN_USE', message, { context });
  }
}

export const SET_MIN_COMPAT = 'ceph osd set-require-min-compat-client mimic';

/** Whether `flatten: 'background'` can work for this source and target, and why (part of `check`). */
export function instantCheck(f: PlanFacts, directPossible: boolean, blockers: string): InstantCheck {
  if (!isRbdSource(f.source) || !clonesGoTo(f.target)) {
    return { possible: false, reason: 'instant snapshots need an RBD disk and a target store that holds clones, in the same cluster; this snapshot is copied' };
  }
  if (!directPossible) {
    return { possible: false, reason: `instant snapshots need the direct (clone) path, which is not possible here: ${blockers}` };
  }
  if (f.cloneFormat !== 2) {
    return {
      possible: false,
      reason:
        'only clone format 1 is available (require-min-compat-client below mimic): a clone-v1 parent snapshot must stay protected ' +
        'and cannot move to the snapshot trash, so the source could not be left alone while the clone is flattened later',
      fix: `${SET_MIN_COMPAT} (once every client of the cluster is mimic or newer)`,
    };
  }
  return {
    possible: true,
    reason:
      'clone format 2 is available: the source snapshot moves to the snapshot trash until a flattener has flattened the clone ' +
      '(clones are made with layering,deep-flatten, so the flatten detaches their `snap` too); run `snapstore flattener`',
  };
}

/**
 * Until it is flattened, an instant snapshot reads through to the disk: the image store's user (Glance's)
 * needs read access to the disks' pool to validate, serve or delete it — else Glance answers 500 to the
 * location and cannot delete the image. Probed by opening the disk read-only as that user.
 */
export async function storeReadsSource(store: CephCluster, src: Source, targetPool: string, glance: boolean): Promise<InstantCheck> {
  if (!isRbdSource(src)) return { possible: true, reason: INSTANT_OK };
  const osdCaps = `profile rbd pool=${targetPool}, profile rbd-read-only pool=${src.pool}`;
  try {
    const image = await (await store.pool(src.pool)).openImage(src.image, { readOnly: true });
    await image.close();
  } catch (err) {
    if (!isPermission(err)) throw err;
    return {
      possible: false,
      reason:
        `client.${store.user} (the image store's user${glance ? ', which Glance uses' : ''}) cannot read pool ${src.pool}: until an instant snapshot ` +
        `is flattened it reads through to the disk, so ${glance ? 'Glance could neither validate, serve nor delete it' : 'the store could neither read nor delete it'}`,
      fix: `ceph auth caps client.${store.user} mon 'profile rbd' osd '${osdCaps}'`,
    };
  }
  const flattenBy = await flattenWay(store, targetPool, osdCaps);
  return {
    possible: true,
    reason: `${INSTANT_OK}, and client.${store.user} can read the disks meanwhile; ${flattenBy.via === 'mgr' ? 'ceph-mgr flattens it' : 'run `snapstore flattener`'}`,
    flattenBy,
  };
}

const INSTANT_OK =
  'clone format 2 is available: the source snapshot moves to the snapshot trash until the clone is flattened ' +
  '(clones are made with layering,deep-flatten, so the flatten detaches their `snap` too)';

/** Who will flatten an instant snapshot made with the store's user, and why (asked without queueing anything). */
async function flattenWay(store: CephCluster, targetPool: string, osdCaps: string): Promise<NonNullable<InstantCheck['flattenBy']>> {
  const way = await mgrFlattenCheck(store, targetPool, osdCaps);
  if (way.via === 'mgr') {
    return {
      via: 'mgr',
      reason: `ceph-mgr (rbd_support) accepts flattens of pool ${targetPool} from client.${store.user}: it queues, runs and retries the flatten with no snapstore process running`,
    };
  }
  return { via: 'flattener', reason: `${way.reason} (\`snapstore flattener\`)`, ...(way.fix ? { fix: way.fix } : {}) };
}

/**
 * Removes the trashed `snapstore-*` snapshots of `image` that no clone uses any more (librbd refuses, with
 * EBUSY, one that still has clones). librbd removes them itself when the last clone goes away — unless the
 * user removing the clone may not write the source pool (Glance's user), which leaves them behind.
 * Returns how many were removed.
 */
export async function removeUnusedTrashedSnapshots(io: Ioctx, image: string, only?: string | null): Promise<number> {
  return withImage(io, image, {}, 0, async (handle) => {
    let removed = 0;
    for (const s of await handle.snapList()) {
      if (s.namespace !== 'trash' || !s.originalName || runIdOfSnap(s.originalName) === null) continue;
      if (only != null && s.originalName !== only) continue;
      try {
        await handle.snapRemoveById(s.id);
        removed++;
      } catch (err) {
        if (codeOf(err) !== 'BUSY' && !isNotFound(err)) throw err;
      }
    }
    return removed;
  });
}

/** The canonical `rbd://fsid/pool/image` of a disk source (an existing snapshot is not a disk). */
export function diskSource(src: Source, fsid: string): string {
  if (!isRbdSource(src) || src.snap !== null) {
    throw new SnapstoreError('BAD_SOURCE', `${formatSource(src, fsid)} is not a disk (rbd://fsid/pool/image)`);
  }
  return formatSource(src, fsid);
}

