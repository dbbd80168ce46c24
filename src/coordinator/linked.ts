// Linked snapshots (`flatten: 'never'`): the image stays a clone (format 2) of the disk's snapshot for good,
// and Ceph itself finishes the deletes, in either order:
//
//  - the disk's snapshot is removed at once and moves to the snapshot trash namespace, where it lives
//    exactly as long as a clone depends on it;
//  - nova's `rbd_remove` of the disk moves it to the RBD trash (source USER_PARENT) instead of failing,
//    when nova's client has `rbd_move_parent_to_trash_on_remove = true`;
//  - removing the last clone removes the trashed snapshot and then the trashed disk — as the user that
//    removes the clone, with its caps: a user that may only read the disks' pool (Glance's, as instant
//    snapshots recommend) leaves the disk in the trash, which `snapstore gc` (linked-trash.ts) finishes.
//
// Chains: snapshotting an instance booted from a linked image makes a clone of a clone. Like ceph-csi, the
// depth (counted through rbd_get_parent) has a soft limit, past which the new image is flattened in the
// background (queued like an instant snapshot), and a hard limit, past which it is flattened before it is
// registered.
import { queueFlattenRequest } from './flatten-queue.js';
import type { CephCluster, Image, Ioctx } from '../ceph/index.js';
import { loadNative } from '../ceph/index.js';
import { SnapstoreError } from '../errors.js';
import { isNotFound, isPermission } from './classify.js';
import type { RbdSource, Services } from './context.js';
import { FLATTEN_KEY, SET_MIN_COMPAT, decodeFlattenRequest, type FlattenRequest } from './instant.js';
import { errorText } from './events.js';
import { MGR_ANSWER_MS, MgrSilent, mgrJson } from './mgr-flatten.js';
import { newRunId } from './names.js';
import { blockersText, type DetailedPlan } from './plan.js';
import { withImage } from './rbd-util.js';
import type { Plan, Reason } from './types.js';

/** Clone depths (images read through, the disk's own chain included) that trigger a flatten. */
export interface ChainLimits {
  /** Deeper than this: the new image is flattened in the background. */
  soft: number;
  /** Deeper than this: the new image is flattened before it is registered. */
  hard: number;
}

/** ceph-csi's defaults (rbdsoftmaxclonedepth / rbdhardmaxclonedepth). */
export const DEFAULT_CHAIN_LIMITS: ChainLimits = { soft: 4, hard: 8 };

/** What the chain of a new linked image is, and which limit it passed. */
export interface ChainState {
  /** Images the new image reads through: 1 for a clone of a plain disk. */
  depth: number;
  limit: 'none' | 'soft' | 'hard';
}

/** The ceph option nova's client needs, so that deleting a disk with linked images moves it to the trash. */
export const TRASH_OPTION = 'rbd_move_parent_to_trash_on_remove';

/** Longer than any real chain: a bound on the walk, against a parent loop in a damaged pool. */
const MAX_WALK = 64;

export function checkChainLimits(limits: Partial<ChainLimits> | undefined): ChainLimits {
  const out = { ...DEFAULT_CHAIN_LIMITS, ...limits };
  const ok = (n: number) => Number.isInteger(n) && n >= 1;
  if (!ok(out.soft) || !ok(out.hard) || out.soft > out.hard) {
    throw new SnapstoreError(
      'INVALID_ARGUMENT',
      `chain limits must be whole numbers with 1 <= soft <= hard, not soft ${out.soft} and hard ${out.hard}`,
    );
  }
  return out;
}

/**
 * How many images `image` reads through: 0 without a parent. Each parent is opened read-only by its id,
 * since it may be in the RBD trash (a disk nova deleted while linked images use it).
 */
export async function parentDepth(session: CephCluster, image: Image): Promise<number> {
  let depth = 0;
  let parent = await image.parentInfo();
  while (parent && depth < MAX_WALK) {
    depth++;
    const io = await session.pool(parent.pool, parent.namespace);
    const next = await io.openImageById(parent.imageId, { readOnly: true });
    try {
      parent = await next.parentInfo();
    } finally {
      await next.close();
    }
  }
  return depth;
}

/** The chain a clone of `disk` would have, and what the limits make of it. */
export async function chainOf(session: CephCluster, disk: Image, limits: ChainLimits): Promise<ChainState> {
  const depth = 1 + (await parentDepth(session, disk));
  return { depth, limit: depth > limits.hard ? 'hard' : depth > limits.soft ? 'soft' : 'none' };
}

/** What `check` found out about linked snapshots (see plan.linked). */
export interface LinkedFacts {
  /** Blockers of the direct path, or null when it is possible. */
  directBlockers: string | null;
  cloneFormat: 1 | 2 | null;
  /** `rados_conf_get` of the trash option as nova's client reads its ceph.conf. */
  trashOption: string | null;
  sourceUser: string;
  sourceConf: string;
  /** Whether the store's user may read / write the disks' pool (null: no store user to ask). */
  storeUser: { user: string; reads: boolean; writes: boolean } | null;
  /** What ceph-mgr says of a `rbd trash purge schedule` on the disks' pool (asked only when it matters). */
  purgeSchedule?: PurgeSchedule;
  diskPool: string;
  targetPool: string;
}

/** Each precondition of `flatten: 'never'` with ok/NO and its fix; possible when all are ok. */
export function linkedReasons(f: LinkedFacts): Reason[] {
  if (f.directBlockers !== null) {
    return [{ code: 'LINKED_DIRECT', ok: false, message: `linked snapshots are clones: the direct path must be possible, and it is not: ${f.directBlockers}` }];
  }
  const reasons: Reason[] = [
    f.cloneFormat === 2
      ? { code: 'LINKED_CLONE_V2', ok: true, message: 'clone format 2 is allowed: the disk\'s snapshot can go to the snapshot trash while linked images use it' }
      : {
          code: 'LINKED_CLONE_V2',
          ok: false,
          message: 'only clone format 1 is allowed (require-min-compat-client below mimic): the disk\'s snapshot would have to stay protected, and the disk could never be deleted',
          fix: `${SET_MIN_COMPAT} (once every client of the cluster is mimic or newer)`,
        },
  ];
  const trashOn = f.trashOption === 'true';
  reasons.push({
    code: 'LINKED_TRASH_ON_REMOVE',
    ok: trashOn,
    message: trashOn
      ? `client.${f.sourceUser} (the disks' deleting client) has ${TRASH_OPTION} = true: deleting a disk with linked images moves it to the RBD trash`
      : `client.${f.sourceUser} (the disks' deleting client) has ${TRASH_OPTION} = ${f.trashOption ?? 'unknown'}: deleting a disk with linked images would fail ("image has snapshots with linked clones")`,
    ...(trashOn ? {} : { fix: `add "${TRASH_OPTION} = true" to the [client.${f.sourceUser}] section of ${f.sourceConf} (the ceph.conf nova's client reads)` }),
  });
  reasons.push(...storeUserReasons(f));
  return reasons;
}

function storeUserReasons(f: LinkedFacts): Reason[] {
  const s = f.storeUser;
  if (!s) {
    return [{ code: 'LINKED_STORE_READS_DISKS', ok: false, message: "snapstore cannot tell whether the image store's user may read the disks (the store was given as an object, not a config)" }];
  }
  const reads: Reason = s.reads
    ? { code: 'LINKED_STORE_READS_DISKS', ok: true, message: `client.${s.user} (the image store's user) can read pool ${f.diskPool}, which linked images read through to` }
    : {
        code: 'LINKED_STORE_READS_DISKS',
        ok: false,
        message: `client.${s.user} (the image store's user) cannot read pool ${f.diskPool}: a linked image reads through to the disk, so it could neither be served nor deleted`,
        fix: `ceph auth caps client.${s.user} mon 'profile rbd' osd 'profile rbd pool=${f.targetPool}, profile rbd-read-only pool=${f.diskPool}'`,
      };
  // Informational (ok either way): who finishes the removal of a deleted disk once its last image goes.
  const cleanup: Reason = s.writes
    ? { code: 'LINKED_PARENT_CLEANUP', ok: true, message: `client.${s.user} can write pool ${f.diskPool}: deleting the last image of a deleted disk removes the disk from the trash too` }
    : f.purgeSchedule?.covered
      ? {
          code: 'LINKED_PARENT_CLEANUP',
          ok: true,
          message:
            `client.${s.user} may only read pool ${f.diskPool}, so deleting the last image of a deleted disk leaves the disk in the trash, ` +
            `but ${f.purgeSchedule.why}: it removes such disks on that schedule (and \`snapstore gc\` does too)`,
        }
      : {
          code: 'LINKED_PARENT_CLEANUP',
          ok: true,
          message:
            `warning: client.${s.user} may only read pool ${f.diskPool}: when it deletes the last image of a disk nova already deleted, librbd cannot remove ` +
            `the disk from ${f.diskPool}'s trash, and it stays there (data and all) until \`snapstore gc\` (as the disks' user) removes it — run gc regularly` +
            (f.purgeSchedule ? `; ${f.purgeSchedule.why}` : ''),
          fix:
            `snapstore gc (regularly), or rbd trash purge schedule add --pool ${f.diskPool} 1h, ` +
            `or ceph auth caps client.${s.user} mon 'profile rbd' osd 'profile rbd pool=${f.targetPool}, profile rbd pool=${f.diskPool}'`,
        };
  return [reads, cleanup];
}

/**
 * Whether `user` (connected as `session`) may read and write `pool`: reading is an open of the disk,
 * writing a write op guarded to fail on an object that does not exist — the OSD checks caps first, so it
 * answers EPERM to a read-only user and ENOENT to one that may write, and nothing is ever written.
 */
export async function poolAccess(session: CephCluster, pool: string, disk: string): Promise<{ reads: boolean; writes: boolean }> {
  let io: Ioctx;
  try {
    io = await session.pool(pool);
    const image = await io.openImage(disk, { readOnly: true });
    await image.close();
  } catch (err) {
    if (isPermission(err)) return { reads: false, writes: false };
    throw err;
  }
  try {
    await (await loadNative()).writeOp(io, 'snapstore.write-probe', [{ op: 'assertExists' }, { op: 'omapRm', keys: ['probe'] }]);
    return { reads: true, writes: true };
  } catch (err) {
    if (isNotFound(err)) return { reads: true, writes: true };
    if (isPermission(err)) return { reads: true, writes: false };
    throw err;
  }
}

/**
 * `check`'s verdict on `flatten: 'never'` for `src`, cloned into `targetPool`: the direct plan, then the
 * trash option as nova's client reads it, and what the store's user may do in the disks' pool.
 */
export async function linkedCheck(svc: Services, session: CephCluster, src: RbdSource, targetPool: string, plan: DetailedPlan): Promise<NonNullable<Plan['linked']>> {
  const direct = plan.method === 'direct';
  let storeUser: LinkedFacts['storeUser'] = null;
  let purgeSchedule: PurgeSchedule | undefined;
  if (direct) {
    const su = await svc.storeUserSession();
    if (su) storeUser = { user: su.user, ...(await poolAccess(su, src.pool, src.image)) };
    if (storeUser?.reads && !storeUser.writes) purgeSchedule = await purgeScheduleOf(session, src.pool);
  }
  const reasons = linkedReasons({
    directBlockers: direct ? null : blockersText(plan),
    cloneFormat: plan.cloneFormat,
    trashOption: confValue(session, TRASH_OPTION),
    sourceUser: session.user,
    sourceConf: svc.sourceConfig?.confPath ?? 'the ceph.conf of the disks\' client',
    storeUser,
    diskPool: src.pool,
    targetPool,
    ...(purgeSchedule ? { purgeSchedule } : {}),
  });
  return { possible: reasons.every((r) => r.ok), reasons };
}

function confValue(session: CephCluster, key: string): string | null {
  try {
    return session.confGet(key);
  } catch {
    return null;
  }
}

/**
 * Images in `io`'s pool that are clones of a snapshot of `pool/image` and not queued for a flatten: the
 * linked snapshots of that disk (an instant snapshot's clone is one too until flattened, but is queued).
 */
export async function linkedDependants(io: Ioctx, pool: string, image: string, queued: ReadonlySet<string>): Promise<string[]> {
  const out: string[] = [];
  for (const name of await io.listImages()) {
    if (queued.has(name)) continue;
    const st = await io.statImage(name).catch((err: unknown) => {
      if (isNotFound(err)) return null;
      throw err;
    });
    if (st?.parent && st.parent.pool === pool && st.parent.image === image) out.push(name);
  }
  return out.sort();
}

/** Whether `session`'s client moves a disk with linked images to the trash when it deletes it. */
export function movesParentToTrash(session: CephCluster): boolean {
  return confValue(session, TRASH_OPTION) === 'true';
}

/**
 * Queues a flatten of the linked image `name` (a flatten request, as an instant snapshot leaves one) so
 * that a flattener detaches it on demand; false when it has no parent or is queued already.
 */
export async function queueLinkedFlatten(session: CephCluster, io: Ioctx, name: string): Promise<boolean> {
  return withImage(io, name, {}, false, async (image) => {
    if (decodeFlattenRequest(await image.metadataGet(FLATTEN_KEY))) return false;
    const parent = await image.parentInfo();
    if (!parent) return false;
    const request: FlattenRequest = {
      v: 1,
      requestedAt: new Date().toISOString(),
      runId: newRunId(),
      source: `rbd://${session.fsid}/${parent.pool}/${parent.image}`,
      // librbd removes the parent's trashed snapshot (and a trashed parent) when its last clone detaches.
      sourceSnap: null,
    };
    // Through the queue's index (flatten-queue.ts): a flattener's poll reads the index, not every image.
    await queueFlattenRequest(image, request);
    return true;
  });
}

export interface PurgeSchedule {
  covered: boolean;
  why: string;
}

/**
 * Whether ceph-mgr's `rbd trash purge schedule` covers `pool` (a schedule on the pool or on every pool),
 * asked as `session`'s user (`rbd trash purge schedule ls`). Trash purge removes a trashed
 * disk whose last clone is gone, as gc does.
 */
export async function purgeScheduleOf(session: CephCluster, pool: string): Promise<PurgeSchedule> {
  const ask = (level: string) =>
    mgrJson(session, { prefix: 'rbd trash purge schedule list', level_spec: level, format: 'json' }, MGR_ANSWER_MS).then(
      (listed) => Object.values((listed ?? {}) as Record<string, { name?: unknown; schedule?: Array<{ interval?: unknown }> }>),
      (err: unknown) => `asked as client.${session.user}: ${err instanceof MgrSilent ? err.reason : errorText(err)}`,
    );
  // The pool's level first (a cap like `mgr 'profile rbd pool=vms'` allows that), then every pool's.
  const own = await ask(`${pool}/`);
  const global = typeof own !== 'string' && own.some((l) => l.name === `${pool}/`) ? own : await ask('');
  const levels = [own, global].flatMap((x) => (typeof x === 'string' ? [] : x));
  const hit = levels.find((l) => l.name === `${pool}/`) ?? levels.find((l) => l.name === '');
  if (!hit) {
    const unknown = [own, global].filter((x): x is string => typeof x === 'string');
    return {
      covered: false,
      why: unknown.length
        ? `whether a ceph-mgr rbd trash purge schedule covers pool ${pool} is unknown (${unknown[0]})`
        : `no ceph-mgr rbd trash purge schedule covers pool ${pool}`,
    };
  }
  const every = (hit.schedule ?? []).map((x) => String(x.interval)).join(', ');
  return { covered: true, why: `ceph-mgr's rbd trash purge schedule covers pool ${pool}${hit.name === '' ? ' (set for every pool)' : ''}${every ? ` every ${every}` : ''}` };
}
