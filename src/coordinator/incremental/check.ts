// What `check` says about incremental snapshots: whether the next snapshot (with `incremental` on) will be
// made from a previous image, which, and how many bytes it would read from the disk as of now.
import type { CephCluster } from '../../ceph/index.js';
import type { Store } from '../../store.js';
import { mgrFlattenCheck, whyNotMgr } from '../mgr-flatten.js';
import type { Assessment } from '../context.js';
import { errorText } from '../events.js';
import type { IncrementalCheck } from '../types.js';
import { changedExtents, summarize } from './changes.js';
import { verifyPairing } from './pairing.js';

/** Null when incremental snapshots cannot apply to this source at all (a file, an existing snapshot). */
export async function incrementalCheck(store: Store, a: Assessment, storeUser: () => Promise<CephCluster | null>): Promise<IncrementalCheck | null> {
  if (!a.disk || a.src.snap !== null) return null;
  // In auto mode the direct path sends nothing; what a copy (--mode copy) would do is still worth saying.
  const prefix = a.plan.method === 'direct' ? 'auto mode takes the direct path (nothing sent); with --mode copy: ' : '';
  const no = (reason: string): IncrementalCheck => ({ possible: false, from: null, bytesExpected: null, reason: `${prefix}${reason}` });
  const inc = store.incremental;
  if (!inc) return no('the target store cannot make an image from a previous one: every snapshot is a full copy');
  try {
    const io = await a.session.pool(a.src.pool);
    const disk = await io.openImage(a.src.image, { readOnly: true });
    try {
      const verdict = await verifyPairing(disk, a.canonical, inc);
      if (verdict === null) return no('no earlier snapshot of this disk into this store kept a common point: the next one is a full copy that keeps one');
      if (!verdict.ok) return no(`a full copy: ${verdict.reason}`);
      const { bytesSent } = summarize(await changedExtents(disk, verdict.pairing.snap));
      const from = verdict.pairing.imageId;
      const later = `with --flatten background it is usable before its flatten, and ${from} cannot be deleted (Glance answers 409) until that ends`;
      const by = await flattenFirstBy(store, storeUser);
      const flatten = by.via === 'mgr' ? 'flattened inside the target by ceph-mgr before the changes go in' : `flattened through snapstore before the changes go in (${by.reason})`;
      return { possible: true, from, bytesExpected: bytesSent, reason: `${prefix}made from ${from}, ${flatten}, sending what changed since ${verdict.pairing.snap}; ${later}`, flattenFirstBy: by };
    } finally {
      await disk.close().catch(() => {});
    }
  } catch (err) {
    return no(`the pairing could not be read: ${errorText(err)}`);
  }
}

/** Who flattens the new image first, asked without queueing anything (as `check` asks for instant snapshots). */
async function flattenFirstBy(store: Store, storeUser: () => Promise<CephCluster | null>): Promise<NonNullable<IncrementalCheck['flattenFirstBy']>> {
  const [session, where] = await Promise.all([storeUser().catch(() => null), store.clones?.where().catch(() => null) ?? null]);
  if (!session || !where) return { via: 'snapstore', reason: 'no Ceph user of the store to ask ceph-mgr with' };
  const way = await mgrFlattenCheck(session, where.pool, `profile rbd pool=${where.pool}`);
  if (way.via === 'mgr') return { via: 'mgr', reason: `ceph-mgr (rbd_support) accepts flattens of pool ${where.pool} from client.${session.user}` };
  return { via: 'snapstore', reason: whyNotMgr(way.reason), ...(way.fix ? { fix: way.fix } : {}) };
}
