// One disk of a group snapshot: a copy-path run of its own (its own run id, journal entry, run record,
// target image and Glance image) that reads the disk at the group snapshot, by id. It runs in two halves:
// `copyMember` up to the registration in Glance, with the target still marked pending (so until the group
// commits, gc removes it like any unfinished run's), and `finishMember` after the commit.
import type { Copied } from '../paths/copy.js';
import { copyData } from '../paths/copy.js';
import { createGlanceImage, registerLocation } from '../paths/glance.js';
import { recordRun, unrecordRun, type SourceRun } from '../paths/source-run.js';
import { targetText } from '../paths/target.js';
import type { RbdAssessment, RunContext } from '../context.js';
import { encodeMark, pendingMarker } from '../names.js';
import type { SnapshotResult } from '../types.js';

/** Glance property holding the group snapshot's id, the same on every image of one group snapshot. */
export const GLANCE_GROUP_PROPERTY = 'snapstore_group';

export interface CopiedMember {
  s: SourceRun;
  copied: Copied;
  glance: SnapshotResult['glance'];
}

/**
 * The disk's image, copied from the group snapshot (`snapId` on the disk; `snapName` its group snapshot's
 * name, which the run records as the existing snapshot it reads: never its own, so never removed by it).
 */
export async function copyMember(ctx: RunContext, a: RbdAssessment, snap: { id: bigint; name: string }, groupId: string, name: string): Promise<CopiedMember> {
  const atSnap: RbdAssessment = { ...a, src: { ...a.src, snap: snap.name } };
  const s = await recordRun(ctx, atSnap, 'copy', await targetText(ctx.store, ctx.imageId, 'store'));
  s.snapId = snap.id;
  await createGlanceImage(ctx, name, { [GLANCE_GROUP_PROPERTY]: groupId });
  await s.handle.close();
  const marker = encodeMark(pendingMarker(ctx.r.runId, 'copy', a.canonical, null));
  const copied = await copyData(ctx, { disk: true, a: atSnap, s }, 'store', marker);
  const glance = await registerLocation(ctx, copied.location, { checksums: copied.checksums, expectedFsid: a.targetFsid, marker });
  return { s, copied, glance };
}

/** After the group's commit: the target stands alone (mark cleared) and the run's record goes. */
export async function finishMember(ctx: RunContext, m: CopiedMember): Promise<void> {
  await ctx.r.step('unmark-target', () => ctx.store.clearPending(ctx.imageId));
  await unrecordRun(ctx, m.s);
}
