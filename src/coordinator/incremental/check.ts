// What `check` says about incremental snapshots: whether the next snapshot (with `incremental` on) will be
// made from a previous image, which, and how many bytes it would read from the disk as of now.
import type { Store } from '../../store.js';
import type { Assessment } from '../context.js';
import { errorText } from '../events.js';
import type { IncrementalCheck } from '../types.js';
import { changedExtents, summarize } from './changes.js';
import { verifyPairing } from './pairing.js';

/** Null when incremental snapshots cannot apply to this source at all (a file, an existing snapshot). */
export async function incrementalCheck(store: Store, a: Assessment): Promise<IncrementalCheck | null> {
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
      return { possible: true, from, bytesExpected: bytesSent, reason: `${prefix}made from ${from}, sending what changed since ${verdict.pairing.snap}; ${later}` };
    } finally {
      await disk.close().catch(() => {});
    }
  } catch (err) {
    return no(`the pairing could not be read: ${errorText(err)}`);
  }
}
