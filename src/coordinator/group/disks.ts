// The SOURCEs of a group snapshot: RBD disks (not snapshots, not files) of the configured cluster, each
// once; assessed as `check` assesses one disk.
import { SnapstoreError } from '../../errors.js';
import { assess } from '../assess.js';
import type { RbdAssessment, Services } from '../context.js';
import { BadSourceError } from '../errors.js';
import { isRbdSource } from '../source-kind.js';
import { parseSource } from '../source.js';
import type { GroupDisk } from './ceph.js';

/** The disks, assessed; `mode` as for one disk ('copy' skips the clone probe). @throws BAD_SOURCE, INVALID_ARGUMENT */
export async function assessDisks(svc: Services, sources: string[], mode: 'auto' | 'copy'): Promise<[RbdAssessment, ...RbdAssessment[]]> {
  if (!Array.isArray(sources) || sources.length === 0) throw new SnapstoreError('INVALID_ARGUMENT', 'a group snapshot needs at least one SOURCE');
  const out: RbdAssessment[] = [];
  for (const source of sources) {
    const src = parseSource(source, svc.sourceConfig?.pool);
    if (!isRbdSource(src)) throw new BadSourceError(`${source}: a group snapshot takes RBD disks, not files`, { source });
    if (src.snap !== null) throw new BadSourceError(`${source}: a group snapshot takes disks, not existing snapshots`, { source });
    const a = await assess(svc, src, mode);
    if (!a.disk) throw new BadSourceError(`${source}: a group snapshot takes RBD disks, not files`, { source });
    if (out.some((b) => b.canonical === a.canonical)) throw new SnapstoreError('INVALID_ARGUMENT', `${a.canonical} is named twice`, { context: { source: a.canonical } });
    out.push(a);
  }
  const [first, ...rest] = out;
  if (!first) throw new SnapstoreError('INVALID_ARGUMENT', 'a group snapshot needs at least one SOURCE');
  return [first, ...rest];
}

export function groupDisk(a: RbdAssessment): GroupDisk {
  return { pool: a.src.pool, image: a.src.image, canonical: a.canonical };
}

/** Why no disk of a group snapshot takes the direct path on this librbd. */
export const GROUP_CLONE_REASON = {
  code: 'GROUP_SNAP_CLONE',
  ok: false,
  message:
    "a group snapshot cannot be cloned here: librbd's rbd_clone3 (Pacific) clones a snapshot by name in the user namespace, and a group snapshot lives in the group namespace (rbd_clone4, which clones by snapshot id, is not in this librbd); each disk is copied from the group snapshot instead",
} as const;

/** The disks as the group code names them (the first one first). */
export function groupDisks(disks: [RbdAssessment, ...RbdAssessment[]]): [GroupDisk, ...GroupDisk[]] {
  return [groupDisk(disks[0]), ...disks.slice(1).map(groupDisk)];
}
