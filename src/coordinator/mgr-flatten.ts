// Background flattens through Ceph's own task queue: the always-on `rbd_support` module of ceph-mgr keeps
// a persistent queue of RBD tasks in RADOS (omap of `rbd_task` in each pool), runs flattens, retries the
// ones that fail with a backoff, survives a mgr failover and reports progress. What `ceph rbd task add
// flatten POOL/IMAGE` sends is the JSON command `{"prefix": "rbd task add flatten", "image_spec":
// "POOL/IMAGE"}`; the answer is the task as JSON (`id`, `sequence`, `message`, `refs`). The mgr runs the
// flatten as its own user: the client only needs `mgr 'profile rbd pool=POOL'` (which Ceph's OpenStack
// guide gives Glance's user). ceph-csi queues its background flattens the same way.
//
// When the mgr refuses (no mgr cap: EACCES) or no mgr answers within a bound, the flatten stays queued for
// snapstore's own flattener (flattener.ts), and the result and events say why.
import type { CephCluster } from '../ceph/index.js';
import { SnapstoreError, codeOf } from '../errors.js';
import { errorText } from './events.js';

/** How long a command may wait for the mgr before the flattener is used instead. */
export const MGR_ANSWER_MS = 5000;
/** After the mgr did not answer, how long a session goes straight to the flattener before asking again. */
const MGR_RETRY_AFTER_MS = 5 * 60 * 1000;

/** A task of rbd_support's queue, as `rbd task list` shows it (Ceph's field names). */
export interface MgrTask {
  id: string;
  sequence: number;
  message: string;
  refs: { action: string; pool_name: string; pool_namespace: string; image_name: string; image_id?: string };
  in_progress?: boolean;
  /** 0..1, while in progress. */
  progress?: number;
  retry_attempts?: number;
  retry_message?: string;
  retry_time?: string;
  canceled?: boolean;
}

/** Where a task stands: waiting, running (with its fraction done), failed at least once (Ceph retries it), or gone. */
export type MgrTaskState =
  | { state: 'queued' }
  | { state: 'running'; progress: number }
  | { state: 'failed'; message: string; attempts: number }
  | { state: 'gone' };

/** Why a background flatten is (or would be) left to snapstore's flattener. */
export type FlattenerReason = { code: 'MGR_CAPS' | 'MGR_UNAVAILABLE' | 'MGR_REFUSED' | 'NO_STORE_USER'; reason: string; fix?: string };

export type MgrQueueOutcome = { via: 'mgr'; taskId: string } | ({ via: 'flattener' } & FlattenerReason);

/** How every FlattenerReason's text ends: who flattens instead of the mgr, in the background. */
export const FLATTENER_TAIL = ": snapstore's flattener must flatten it";
/** Why the mgr is not asked at all: no Ceph user of the store's to ask it with. */
export const NO_STORE_USER_REASON = "the coordinator was given a Store object, not the store's Ceph user to ask ceph-mgr with";

/** A FlattenerReason's text without its tail: why the mgr does not flatten, for a flatten snapstore does at once. */
export function whyNotMgr(reason: string): string {
  return reason.endsWith(FLATTENER_TAIL) ? reason.slice(0, -FLATTENER_TAIL.length) : reason;
}

/** The cap that lets `user` queue flattens of images in `pool` (Ceph's OpenStack guide gives it to Glance). */
export function mgrCapFix(user: string, osdCaps: string, pool: string): string {
  return `ceph auth caps client.${user} mon 'profile rbd' osd '${osdCaps}' mgr 'profile rbd pool=${pool}'`;
}

/** Sessions whose mgr did not answer lately: snapshots then go to the flattener at once. */
const silentMgr = new WeakMap<CephCluster, { until: number; reason: string }>();

export async function mgrJson(session: CephCluster, cmd: Record<string, string>, timeoutMs: number): Promise<unknown> {
  const silent = silentMgr.get(session);
  if (silent && silent.until > Date.now()) throw new MgrSilent(silent.reason);
  const inactive = await noActiveMgr(session, timeoutMs);
  if (inactive) throw new MgrSilent(inactive);
  try {
    const { output } = await session.native.mgrCommand(cmd, undefined, { timeoutMs });
    const text = output.toString('utf8').trim();
    return text ? (JSON.parse(text) as unknown) : null;
  } catch (err) {
    if (codeOf(err) === 'TIMEOUT') {
      const reason = `no ceph-mgr answered within ${timeoutMs} ms (${errorText(err)})`;
      silentMgr.set(session, { until: Date.now() + MGR_RETRY_AFTER_MS, reason });
      throw new MgrSilent(reason);
    }
    throw err;
  }
}

/**
 * Why no mgr can answer, when the monitors say none is active (`ceph status`: mgrmap.available false) — a
 * mgr command would otherwise wait the whole bound for one. Null when one is active or the monitors do not
 * say (then the command's own bound decides).
 */
async function noActiveMgr(session: CephCluster, timeoutMs: number): Promise<string | null> {
  const known = mgrMapSeen.get(session);
  if (known && known.until > Date.now()) return known.inactive;
  let inactive: string | null = null;
  try {
    const { output } = await session.native.monCommand({ prefix: 'status', format: 'json' }, undefined, { timeoutMs });
    const status = JSON.parse(output.toString('utf8')) as { mgrmap?: { available?: unknown } };
    if (status.mgrmap?.available === false) inactive = "no ceph-mgr is active (the monitors' mgrmap says available: false)";
  } catch {
    return null;
  }
  mgrMapSeen.set(session, { until: Date.now() + SEEN_FOR_MS, inactive });
  return inactive;
}

/**
 * What a session last learned (the mgrmap, the answer to check's probe), kept briefly: `check` and the
 * snapshot that follows it ask the same questions, and an instant snapshot must stay instant.
 */
const SEEN_FOR_MS = 30_000;
const mgrMapSeen = new WeakMap<CephCluster, { until: number; inactive: string | null }>();
const probeSeen = new WeakMap<CephCluster, Map<string, { until: number; outcome: MgrCheckOutcome }>>();

/** Internal marker: the mgr is known not to answer (not an error that leaves this module). */
export class MgrSilent {
  constructor(readonly reason: string) {}
}

/** Turns a refused or unanswered mgr command into the reason the flattener is used. */
function flattenerReason(err: unknown, session: CephCluster, pool: string, osdCaps: string): FlattenerReason {
  if (err instanceof MgrSilent) return { code: 'MGR_UNAVAILABLE', reason: `${err.reason}${FLATTENER_TAIL}` };
  const code = codeOf(err);
  if (code === 'PERMISSION') {
    return {
      code: 'MGR_CAPS',
      reason: `ceph-mgr refused client.${session.user} (no mgr cap for pool ${pool})${FLATTENER_TAIL}`,
      fix: mgrCapFix(session.user, osdCaps, pool),
    };
  }
  return { code: 'MGR_REFUSED', reason: `ceph-mgr's rbd_support did not take the flatten (${errorText(err)})${FLATTENER_TAIL}` };
}

/**
 * Queues the flatten of `pool/image` with the mgr, as `session`'s user. Never throws: a refusal or silence
 * is the reason the flattener takes it instead. `osdCaps` is only used to write the cap fix.
 */
export async function queueMgrFlatten(session: CephCluster, pool: string, image: string, osdCaps: string): Promise<MgrQueueOutcome> {
  try {
    const task = (await mgrJson(session, { prefix: 'rbd task add flatten', image_spec: `${pool}/${image}` }, MGR_ANSWER_MS)) as Partial<MgrTask> | null;
    if (!task || typeof task.id !== 'string') {
      return { via: 'flattener', code: 'MGR_REFUSED', reason: `ceph-mgr's rbd_support answered without a task id${FLATTENER_TAIL}` };
    }
    return { via: 'mgr', taskId: task.id };
  } catch (err) {
    return { via: 'flattener', ...flattenerReason(err, session, pool, osdCaps) };
  }
}

/**
 * Which way a background flatten of an image in `pool` will go, asked without queueing anything: a flatten
 * of an image that cannot exist is authorised first (EACCES without the cap) and then answered ENOENT.
 */
export async function mgrFlattenCheck(session: CephCluster, pool: string, osdCaps: string): Promise<MgrCheckOutcome> {
  const seen = probeSeen.get(session)?.get(pool);
  if (seen && seen.until > Date.now()) return seen.outcome;
  let outcome: MgrCheckOutcome = { via: 'mgr', taskId: null };
  try {
    await mgrJson(session, { prefix: 'rbd task add flatten', image_spec: `${pool}/snapstore-mgr-probe-does-not-exist` }, MGR_ANSWER_MS);
  } catch (err) {
    if (codeOf(err) !== 'NOT_FOUND') outcome = { via: 'flattener', ...flattenerReason(err, session, pool, osdCaps) };
  }
  const pools = probeSeen.get(session) ?? new Map<string, { until: number; outcome: MgrCheckOutcome }>();
  pools.set(pool, { until: Date.now() + SEEN_FOR_MS, outcome });
  probeSeen.set(session, pools);
  return outcome;
}

export type MgrCheckOutcome = MgrQueueOutcome | { via: 'mgr'; taskId: null };

/** rbd_support's task list (every pool), or why it cannot be read. */
export async function listMgrTasks(session: CephCluster): Promise<{ tasks: MgrTask[] } | { error: string }> {
  try {
    const tasks = await mgrJson(session, { prefix: 'rbd task list' }, MGR_ANSWER_MS);
    return { tasks: Array.isArray(tasks) ? (tasks as MgrTask[]) : [] };
  } catch (err) {
    return { error: err instanceof MgrSilent ? err.reason : errorText(err) };
  }
}

/** Cancels a task (it is removed from the queue; a running flatten stops). A task already gone is fine. */
export async function cancelMgrTask(session: CephCluster, taskId: string): Promise<void> {
  try {
    await mgrJson(session, { prefix: 'rbd task cancel', task_id: taskId }, MGR_ANSWER_MS);
  } catch (err) {
    if (codeOf(err) !== 'NOT_FOUND') throw err instanceof MgrSilent ? new MgrUnavailableError(err.reason) : err;
  }
}

/** The state of task `taskId` in a task list. */
export function taskState(tasks: MgrTask[], taskId: string): MgrTaskState {
  const task = tasks.find((t) => t.id === taskId);
  if (!task) return { state: 'gone' };
  if (task.in_progress) return { state: 'running', progress: typeof task.progress === 'number' ? task.progress : 0 };
  if (task.retry_message || (task.retry_attempts ?? 0) > 0) {
    return { state: 'failed', message: task.retry_message ?? 'failed', attempts: task.retry_attempts ?? 1 };
  }
  return { state: 'queued' };
}

export function describeTaskState(s: MgrTaskState): string {
  switch (s.state) {
    case 'queued':
      return 'queued';
    case 'running':
      return `running (${Math.round(s.progress * 100)}%)`;
    case 'failed':
      return `failed ${s.attempts} time(s): ${s.message}`;
    case 'gone':
      return 'gone from the queue';
  }
}

/** No mgr answered a command that needed one. */
export class MgrUnavailableError extends SnapstoreError {
  constructor(message: string) {
    super('MGR_UNAVAILABLE', message);
  }
}

/** A queued image with no view of the mgr's queue is left to the mgr this long, then taken by the flattener. */
export const MGR_GRACE_MS = 15 * 60 * 1000;

/** What a flattener does with an image whose flatten was queued with the mgr. */
export type MgrVerdict = { take: false; why: string } | { take: true; why: string; cancel: string | null };

/**
 * Whether snapstore's flattener takes over a flatten queued with the mgr (task `taskId`, queued at
 * `queuedAt`): never while the mgr has it queued or running; when the task failed (Ceph would retry it,
 * the flattener does it now, after cancelling it) or is gone from the queue (a failed task Ceph dropped,
 * a lost queue); and, when the queue cannot be read, once it has waited MGR_GRACE_MS.
 */
export function mgrVerdict(queue: { tasks: MgrTask[] } | { error: string } | null, taskId: string, queuedAt: string, now = Date.now()): MgrVerdict {
  if (queue && 'tasks' in queue) {
    const s = taskState(queue.tasks, taskId);
    if (s.state === 'queued' || s.state === 'running') return { take: false, why: `being flattened by ceph-mgr (task ${taskId}: ${describeTaskState(s)})` };
    if (s.state === 'failed') return { take: true, why: `ceph-mgr task ${taskId} ${describeTaskState(s)}`, cancel: taskId };
    return { take: true, why: `ceph-mgr task ${taskId} is gone from the queue and the image still has its parent`, cancel: null };
  }
  const waited = now - Date.parse(queuedAt);
  const unseen = queue ? `ceph-mgr's queue cannot be read (${queue.error})` : "no connection that may read ceph-mgr's queue";
  if (waited < MGR_GRACE_MS) return { take: false, why: `being flattened by ceph-mgr (task ${taskId}; ${unseen}, left to it for ${MGR_GRACE_MS / 60000} min)` };
  return { take: true, why: `${unseen}, and task ${taskId} was queued ${Math.round(waited / 60000)} min ago`, cancel: null };
}
