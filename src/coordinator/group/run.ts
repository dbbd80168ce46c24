// A group snapshot: every disk captured at one point in time by one Ceph group snapshot, then each copied
// into an image of its own (group/member.ts), all or nothing. Order, and what a kill leaves:
//   group-record    the group's journal entry (group-entry.ts) lists the group, its snapshot and every
//                   disk's run, before anything is made;
//   group-create/-add/-snap   a temporary group holding the disks (or their own group) and its snapshot;
//   each disk       copied and registered in Glance, its target still marked pending;
//   group-snap-remove, group-remove   the disks back as they were;
//   group-commit    the entry says `committed`: from here on gc finishes the disks instead of removing them;
//   each disk       unmarked and unrecorded; then the entry goes (group-unrecord).
// A failure before the commit unwinds every disk's run (newest first) and then the group's own steps.
import { randomUUID } from 'node:crypto';
import type { CephCluster } from '../../ceph/index.js';
import { InternalError } from '../../errors.js';
import type { RbdAssessment, RunContext, Services } from '../context.js';
import { CleanupFailedError, ModeNotPossibleError, SnapshotCancelledError, SnapshotFailedError } from '../errors.js';
import { errorText } from '../events.js';
import { registerGroup, type GroupRecord } from '../journal/group-entry.js';
import type { Lease } from '../journal/lease.js';
import { newRunId } from '../names.js';
import { checkTargetFree } from '../paths/target.js';
import { StepFailure, StepRunner, type UndoFailure } from '../steps.js';
import { chooseGroup, dropGroupSnapshot, memberSnapIds, takeGroupSnapshot, type CephGroup } from './ceph.js';
import { assessDisks, GROUP_CLONE_REASON, groupDisk, groupDisks } from './disks.js';
import { copyMember, finishMember, type CopiedMember } from './member.js';
import type { GroupImageResult, GroupSnapshotOptions, GroupSnapshotResult } from './types.js';

interface Member {
  a: RbdAssessment;
  ctx: RunContext;
  copied: CopiedMember | null;
}

/** The group run's shared state. */
interface GroupRun {
  svc: Services;
  /** The disks' cluster. */
  session: CephCluster;
  opts: GroupSnapshotOptions & { signal: AbortSignal };
  r: StepRunner;
  record: GroupRecord;
  g: CephGroup;
  members: Member[];
  leaseLost: AbortController;
  lease: Lease | null;
}

export async function runGroupSnapshot(svc: Services, sources: string[], opts: GroupSnapshotOptions): Promise<GroupSnapshotResult> {
  const started = performance.now();
  const mode = opts.mode ?? 'auto';
  if (mode === 'direct') throw new ModeNotPossibleError(`the direct path is not possible for a group snapshot: ${GROUP_CLONE_REASON.message}`);
  if (opts.signal?.aborted) throw new SnapshotCancelledError({}, opts.signal.reason);
  const disks = await assessDisks(svc, sources, 'copy');
  const session = disks[0].session;
  const groupId = newRunId();
  const g = await chooseGroup(session, groupDisks(disks), groupId);
  const run = await prepare(svc, opts, disks, g, groupId, session);
  try {
    await captureAndCopy(run);
  } catch (err) {
    throw await unwind(run, err);
  }
  const images = await finish(run, started);
  return { groupId, group: { pool: g.pool, name: g.name, temporary: g.temporary }, images, seconds: (performance.now() - started) / 1000 };
}

async function prepare(svc: Services, opts: GroupSnapshotOptions, disks: RbdAssessment[], g: CephGroup, groupId: string, session: CephCluster): Promise<GroupRun> {
  const store = await svc.store();
  const leaseLost = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, leaseLost.signal]) : leaseLost.signal;
  const runner = (runId: string, path: 'copy' | 'group') => new StepRunner({ runId, path, emit: svc.emit, faults: svc.faults, signal, onProgress: opts.onProgress });
  const members: Member[] = [];
  for (const a of disks) {
    const imageId = randomUUID();
    await checkTargetFree(store, 'copy', 'store', imageId);
    const glanceImage = svc.glance ? { id: imageId, created: true } : null;
    members.push({ a, copied: null, ctx: { svc, store, r: runner(newRunId(), 'copy'), imageId, opts: { ...opts, signal }, glanceImage, leaseLost } });
  }
  const record: GroupRecord = {
    v: 1,
    groupId,
    startedAt: new Date().toISOString(),
    pool: g.pool,
    group: g.name,
    temporary: g.temporary,
    snap: g.snap,
    members: members.map((m) => ({ runId: m.ctx.r.runId, source: m.a.canonical, imageId: m.ctx.imageId, glanceId: m.ctx.glanceImage?.id ?? null })),
    committed: false,
  };
  return { svc, session, opts: { ...opts, signal }, r: runner(groupId, 'group'), record, g, members, leaseLost, lease: null };
}

/** Everything up to the commit; a throw here is unwound whole. */
async function captureAndCopy(run: GroupRun): Promise<void> {
  const { svc, session, r, record, g, members } = run;
  svc.emit({ type: 'run', runId: r.runId, path: 'group', source: members.map((m) => m.a.canonical).join(' '), imageId: record.groupId });
  const journalIo = await session.pool(svc.sourceConfig?.pool ?? g.pool);
  await r.step('group-record', async () => {
    const lease = await registerGroup(session, journalIo, record, svc.emit, run.leaseLost);
    run.lease = lease;
    r.always('stop renewing the group lease', async () => lease.stop());
    r.undo(`remove journal entry of group ${record.groupId}`, ({ failed }) => (failed ? lease.abandon() : lease.release()));
  });
  const disks = members.map((m) => groupDisk(m.a));
  const undo = await takeGroupSnapshot(r, session, g, disks);
  const ids = await memberSnapIds(session, g, disks);
  for (const [i, m] of members.entries()) {
    const id = ids[i];
    if (id === undefined) throw new InternalError(`no group snapshot id for ${m.a.canonical}`);
    svc.emit({ type: 'run', runId: m.ctx.r.runId, path: 'copy', source: m.a.canonical, imageId: m.ctx.imageId });
    m.copied = await copyMember(m.ctx, m.a, { id, name: g.snap }, record.groupId, diskName(run.opts, m.a));
  }
  await dropGroupSnapshot(r, session, g, undo);
  await r.step('group-commit', async () => run.lease?.update({ group: { ...record, committed: true } }));
}

function diskName(opts: GroupSnapshotOptions, a: RbdAssessment): string {
  return opts.name ? `${opts.name} (${a.src.image})` : `${a.src.image} snapshot`;
}

/** Rolls back every disk's run, newest first, then the group's steps; returns the error to throw. */
async function unwind(run: GroupRun, err: unknown): Promise<unknown> {
  const failures: UndoFailure[] = [];
  for (const m of [...run.members].reverse()) failures.push(...(await m.ctx.r.rollback()));
  failures.push(...(await run.r.rollback()));
  const step = err instanceof StepFailure ? err.step : null;
  const cause = err instanceof StepFailure ? err.cause : err;
  const context = { groupId: run.record.groupId, sources: run.members.map((m) => m.a.canonical), step };
  if (failures.length > 0) {
    const leftovers = failures.map((f) => `${f.what} (${errorText(f.error)})`).join('; ');
    return new CleanupFailedError(
      `group snapshot failed${step ? ` at ${step}` : ''} (${errorText(cause)}), and removing what it had created failed too: ${leftovers}; run gc to retry`,
      { ...context, leftovers: failures.map((f) => f.what) },
      cause,
    );
  }
  if (err instanceof SnapshotCancelledError || !(err instanceof StepFailure)) return err;
  return new SnapshotFailedError(
    `group snapshot of ${context.sources.join(', ')} failed at ${err.step}: ${errorText(cause)}; every image of the group was removed and the disks are as they were`,
    { ...context, method: 'copy' },
    cause,
  );
}

/**
 * After the commit: each disk finished and the entry removed. A failure here does not undo the group (its
 * images are complete and registered): the entry is left abandoned, and gc finishes what is left.
 */
async function finish(run: GroupRun, started: number): Promise<GroupImageResult[]> {
  const images: GroupImageResult[] = [];
  let unfinished = false;
  for (const m of run.members) {
    const copied = m.copied;
    if (!copied) throw new InternalError(`${m.a.canonical} was not copied before the commit`);
    try {
      await finishMember(m.ctx, copied);
    } catch (err) {
      unfinished = true;
      run.svc.emit({ type: 'undo', runId: m.ctx.r.runId, what: `finish ${m.a.canonical} (gc finishes it)`, state: 'failed', error: errorText(err) });
    }
    await m.ctx.r.finish();
    const result = memberResult(m, copied, started);
    run.svc.emit({ type: 'result', runId: m.ctx.r.runId, result });
    images.push({ ...result, source: m.a.canonical });
  }
  const lease = run.lease;
  await run.r.step('group-unrecord', async () => (unfinished ? lease?.abandon() : lease?.release())).catch(() => lease?.stop());
  await run.r.finish();
  return images;
}

function memberResult(m: Member, c: CopiedMember, started: number): Omit<GroupImageResult, 'source'> {
  return {
    imageId: c.glance?.id ?? m.ctx.imageId,
    location: c.copied.location,
    method: 'copy',
    fallbackReason: GROUP_CLONE_REASON.message,
    sizeBytes: c.copied.sizeBytes,
    seconds: (performance.now() - started) / 1000,
    glance: c.glance,
    checksums: c.copied.checksums,
    flatten: 'done',
    incremental: null,
  };
}
