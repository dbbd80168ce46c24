// gc: finds what killed runs left behind and removes it — only things snapstore provably made:
//  - run records (`snapstore.run.<uuid>` metadata on source images) and what a record lists: the source
//    snapshot, the target (only in the configured target pool or data directory) and the Glance image (only
//    when it carries the run's `snapstore_run` property);
//  - `snapstore-<uuid>` snapshots on source images;
//  - clones carrying the `snapstore.pending` marker in the target pool;
//  - `snapstore-probe-<uuidv7>` scratch images in the target pool.
//  - trashed `snapstore-<uuid>` snapshots no clone uses any more (instant snapshots; see instant.ts).
// Clones queued for a background flatten (`snapstore.flatten`, no pending marker) are finished snapshots.
// A leftover qualifies when it is at least `olderThanMs` old and its owner is not a live process on this
// host (an owner on another host is judged by age alone).
import { readFile, readdir, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { CephCluster, Image, Ioctx } from '../ceph/index.js';
import type { RbdSourceConfig, TargetConfig } from '../config/types.js';
import type { GlanceClient } from '../glance/client.js';
import { formatFileLocation } from '../location.js';
import { GlanceNotFound } from '../glance/errors.js';
import { isNotFound, isPermission } from './classify.js';
import { errorText, type Logger } from './events.js';
import {
  GLANCE_RUN_PROPERTY,
  PENDING_KEY,
  RUN_KEY_PREFIX,
  TARGET_SNAP,
  decodePendingMarker,
  decodeRunRecord,
  describeOwner,
  imageIdOfPendingFile,
  lockCookie,
  ownerState,
  pendingFileName,
  probeTime,
  runIdOfSnap,
  runKey,
  type Owner,
  type RunRecord,
} from './names.js';
import { FLATTEN_KEY, removeUnusedTrashedSnapshots } from './instant.js';
import { ignoreNotFound, removeImageFully, removeSnapshot, whileBusy, withImage } from './rbd-util.js';
import { parseSource } from './source.js';
import type { GcOptions, GcReport, Leftover } from './types.js';

export interface GcContext {
  source: { config: RbdSourceConfig; session: () => Promise<CephCluster> } | null;
  target: TargetConfig;
  targetSession: (() => Promise<CephCluster>) | null;
  glance: GlanceClient | null;
  emit: Logger;
}

const DEFAULT_OLDER_THAN_MS = 60 * 60 * 1000;
/** A probe lives well under a second; one this young may belong to a `check` running right now. */
const PROBE_MIN_AGE_MS = 10 * 60 * 1000;
/**
 * A killed process's watch on an image lingers until the OSD times it out (osd_client_watch_timeout, 30 s
 * by default), and until then librbd refuses to remove the image (EBUSY). Clones carry a lock whose
 * breaking ends that at once; for anything else gc waits this long, no longer.
 */
const WATCH_WAIT = { attempts: 45, delayMs: 1000, backoff: false };

interface Removal {
  leftover: Leftover;
  remove: () => Promise<void>;
}

interface Sessions {
  source: CephCluster | null;
  target: CephCluster | null;
}

export async function collectGarbage(ctx: GcContext, opts: GcOptions): Promise<GcReport> {
  const olderThanMs = opts.olderThanMs ?? DEFAULT_OLDER_THAN_MS;
  const dryRun = opts.dryRun ?? false;
  const now = Date.now();
  const [source, target] = await Promise.all([ctx.source?.session() ?? null, ctx.targetSession?.() ?? null]);
  const sessions: Sessions = { source, target };
  const seen = new Set<string>();
  /** Each group runs in order (a clone before its parent snapshot, the record last); groups run in parallel. */
  const groups: Removal[][] = [];
  /** Trashed snapstore snapshots: leftovers only if no clone uses them, which only removing them tells. */
  const trashed: Array<{ io: Ioctx; image: string; snap: string; leftover: Leftover }> = [];

  const qualifies = (leftover: Leftover, owner: Owner | null): boolean => {
    const started = leftover.startedAt === null ? null : Date.parse(leftover.startedAt);
    if (started !== null && now - started < olderThanMs) {
      ctx.emit({ type: 'gc', action: 'kept', leftover, why: `younger than ${olderThanMs} ms` });
      return false;
    }
    if (owner && ownerState(owner) === 'alive') {
      ctx.emit({ type: 'gc', action: 'kept', leftover, why: `its process ${describeOwner(owner)} is still running` });
      return false;
    }
    return true;
  };

  const add = (group: Removal[]) => {
    const fresh = group.filter((r) => !seen.has(r.leftover.location));
    for (const r of fresh) seen.add(r.leftover.location);
    if (fresh.length) groups.push(fresh);
  };

  // The source pool: run records and snapstore snapshots.
  if (source && ctx.source) {
    const pool = ctx.source.config.pool;
    const io = await source.pool(pool);
    for (const name of await io.listImages()) {
      // Snapshots first: a run writes its record before its snapshot, so every snapshot of a run still going
      // on is matched by a record read after it.
      const info = await readImage(ctx, io, name, async (image) => {
        const snapshots = await image.snapList();
        return { snaps: snapshots, meta: await image.metadataList() };
      });
      if (!info) continue;
      const { meta, snaps } = info;
      const where = `rbd://${source.fsid}/${pool}/${name}`;
      const recorded = new Set<string>();
      for (const [key, value] of Object.entries(meta)) {
        if (!key.startsWith(RUN_KEY_PREFIX)) continue;
        const record = decodeRunRecord(value);
        if (!record || runKey(record.runId) !== key) continue;
        if (record.sourceSnap) recorded.add(record.sourceSnap);
        const leftover = toLeftover('run-record', `${where}#${key}`, record.runId, record.owner, Date.parse(record.startedAt));
        if (qualifies(leftover, record.abandoned ? null : record.owner)) add(runRemovals(ctx, sessions, io, name, record));
      }
      for (const snap of snaps) {
        // A trashed snapstore snapshot is an instant snapshot's source: kept while a clone uses it (librbd
        // refuses its removal then), and normally removed by librbd with its last clone — but not when a user
        // who may not write this pool (Glance's) removed the clone. Only an unused one can be removed below.
        const trashedRun = snap.namespace === 'trash' && snap.originalName ? runIdOfSnap(snap.originalName) : null;
        if (trashedRun && snap.timestamp && now - snap.timestamp.getTime() >= olderThanMs) {
          trashed.push({ io, image: name, snap: snap.originalName!, leftover: toLeftover('source-snapshot', `${where}/${snap.originalName!}`, trashedRun, null, snap.timestamp.getTime()) });
        }
        const runId = runIdOfSnap(snap.name);
        if (snap.namespace !== 'user' || !runId || recorded.has(snap.name)) continue;
        const leftover = toLeftover('source-snapshot', `${where}/${snap.name}`, runId, null, snap.timestamp?.getTime() ?? null);
        if (qualifies(leftover, null)) add([{ leftover, remove: () => removeSourceSnapshot(io, name, snap.name) }]);
      }
    }
  }

  // The target pool: unfinished clones and probe images. A clone opens its parent, which only the source
  // user (who made it) may read: in the source cluster its session goes first.
  if (ctx.target.kind === 'rbd') {
    const pool = ctx.target.pool;
    const reader = source && target && source.fsid === target.fsid ? source : target;
    if (reader) {
      const io = await reader.pool(pool);
      const probes: Array<{ name: string; parent: boolean }> = [];
      for (const name of await io.listImages()) {
        const location = `rbd://${reader.fsid}/${pool}/${name}`;
        const born = probeTime(name);
        if (born !== null) {
          if (now - born < Math.max(olderThanMs, PROBE_MIN_AGE_MS)) continue;
          const st = await io.statImage(name).catch(() => null);
          if (st) probes.push({ name, parent: st.parent !== null });
          continue;
        }
        const text = await readImage(ctx, io, name, (image) => image.metadataGet(PENDING_KEY));
        const m = text === null ? null : decodePendingMarker(text);
        if (!m) continue;
        const started = Date.parse(m.startedAt);
        const leftover = toLeftover('clone', location, m.runId, m.owner, started);
        if (!qualifies(leftover, m.owner)) continue;
        const group: Removal[] = [{ leftover, remove: () => removeClone(io, name, m.runId) }];
        const src = markedSource(m.source, sessions);
        const snap = m.sourceSnap;
        if (src && snap) {
          group.push({
            leftover: toLeftover('source-snapshot', `${m.source}/${snap}`, m.runId, m.owner, started),
            remove: async () => removeSourceSnapshot(await src.session.pool(src.pool), src.image, snap),
          });
        }
        add(group);
      }
      // Clones of probes go before the probes they hang from.
      probes.sort((x, y) => Number(y.parent) - Number(x.parent));
      add(
        probes.map(({ name }) => ({
          leftover: toLeftover('probe-image', `rbd://${reader.fsid}/${pool}/${name}`, null, null, probeTime(name)),
          remove: () => removeImage(io, name),
        })),
      );
    }
  }

  // The file store: images whose pending file says they are unfinished.
  if (ctx.target.kind === 'file') {
    const dir = resolve(ctx.target.dataDir);
    for (const entry of await readdir(dir).catch(() => [] as string[])) {
      const imageId = imageIdOfPendingFile(entry);
      if (!imageId) continue;
      const m = decodePendingMarker(await readFile(join(dir, entry), 'utf8').catch(() => ''));
      if (!m) continue;
      const leftover = toLeftover('target', formatFileLocation(join(dir, imageId)), m.runId, m.owner, Date.parse(m.startedAt));
      if (qualifies(leftover, m.owner)) add([{ leftover, remove: () => removeFileTarget(dir, imageId) }]);
    }
  }

  const found = groups.flat().map((r) => r.leftover);
  for (const leftover of found) ctx.emit({ type: 'gc', action: 'found', leftover });
  const removed: Leftover[] = [];
  if (!dryRun) {
    await Promise.all(
      groups.map(async (group) => {
        for (const r of group) {
          try {
            await r.remove();
            removed.push(r.leftover);
            ctx.emit({ type: 'gc', action: 'removed', leftover: r.leftover });
          } catch (err) {
            ctx.emit({ type: 'gc', action: 'failed', leftover: r.leftover, why: errorText(err) });
            // What depends on it (the parent snapshot of a clone that stays, the record) stays too.
            break;
          }
        }
      }),
    );
    for (const t of trashed) {
      try {
        if ((await removeUnusedTrashedSnapshots(t.io, t.image, t.snap)) === 0) continue;
        found.push(t.leftover);
        removed.push(t.leftover);
        ctx.emit({ type: 'gc', action: 'removed', leftover: t.leftover });
      } catch (err) {
        ctx.emit({ type: 'gc', action: 'failed', leftover: t.leftover, why: errorText(err) });
      }
    }
  }
  return { found, removed, dryRun };
}

function toLeftover(kind: Leftover['kind'], location: string, runId: string | null, owner: Owner | null, startedAt: number | null): Leftover {
  return {
    kind,
    location,
    runId,
    owner: owner ? describeOwner(owner) : null,
    startedAt: startedAt !== null && Number.isFinite(startedAt) ? new Date(startedAt).toISOString() : null,
  };
}

/**
 * Reads something from an image opened read-only; null when the image went away meanwhile or cannot be
 * read (reported: one unreadable image must not stop gc from cleaning the rest).
 */
async function readImage<T>(ctx: GcContext, io: Ioctx, name: string, read: (image: Image) => Promise<T>): Promise<T | null> {
  let image: Image | null = null;
  try {
    image = await io.openImage(name, { readOnly: true });
    return await read(image);
  } catch (err) {
    if (!isNotFound(err)) ctx.emit({ type: 'gc-skipped', location: `${io.pool}/${name}`, why: `cannot read it: ${errorText(err)}` });
    return null;
  } finally {
    await image?.close();
  }
}

/** Removes an image snapstore made, waiting out the watch of a killed process. */
function removeImage(io: Ioctx, name: string): Promise<void> {
  return whileBusy(() => removeImageFully(io, name), WATCH_WAIT);
}

/** Breaks the run's lock on its clone (librbd blocklists the dead holder, ending its watch), then removes it. */
async function removeClone(io: Ioctx, name: string, runId: string): Promise<void> {
  const exists = await withImage(io, name, {}, false, async (image) => {
    for (const locker of await image.listLockers()) {
      if (locker.cookie === lockCookie(runId)) await ignoreNotFound(image.breakLock(locker.client, locker.cookie));
    }
    return true;
  });
  if (exists) await removeImage(io, name);
}

async function removeSourceSnapshot(io: Ioctx, image: string, snap: string): Promise<void> {
  await withImage(io, image, {}, undefined, (handle) => whileBusy(() => removeSnapshot(handle, snap), WATCH_WAIT));
}

/** The sessions connected to cluster `fsid`, the source user's first. */
function sessionsFor(fsid: string, sessions: Sessions): CephCluster[] {
  return [sessions.source, sessions.target].filter((s): s is CephCluster => s !== null && s.fsid === fsid);
}

/** Runs `fn` with the first session allowed to (the source user made clones, the target user copies). */
async function withSessions(list: CephCluster[], fn: (s: CephCluster) => Promise<void>): Promise<void> {
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
function markedSource(source: string, sessions: Sessions): { session: CephCluster; pool: string; image: string } | null {
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
 * The removals a stale run record stands for, in order; the record goes last, and only when everything it
 * lists could be reached (else a gc with the right configuration can still find the rest through it).
 */
function runRemovals(ctx: GcContext, sessions: Sessions, sourceIo: Ioctx, image: string, record: RunRecord): Removal[] {
  const out: Removal[] = [];
  const started = Date.parse(record.startedAt);
  const leftover = (kind: Leftover['kind'], location: string) => toLeftover(kind, location, record.runId, record.owner, started);
  let complete = true;
  if (record.glance?.created) {
    const glance = ctx.glance;
    const id = record.glance.id;
    if (glance) {
      out.push({ leftover: leftover('glance-image', `glance:${id}`), remove: () => deleteGlanceImage(glance, id, record.runId) });
    } else {
      complete = false;
    }
  }
  const target = targetRemoval(ctx, sessions, record);
  if (target) {
    out.push({ leftover: leftover(record.method === 'direct' ? 'clone' : 'target', record.target), remove: target });
  } else if (!record.target.startsWith('glance:')) {
    complete = false;
  }
  if (record.sourceSnap) {
    const snap = record.sourceSnap;
    out.push({ leftover: leftover('source-snapshot', `${record.source}/${snap}`), remove: () => removeSourceSnapshot(sourceIo, image, snap) });
  }
  const recordLeftover = leftover('run-record', `${record.source}#${runKey(record.runId)}`);
  if (complete) {
    out.push({
      leftover: recordLeftover,
      remove: async () => {
        const handle = await sourceIo.openImage(image);
        try {
          await ignoreNotFound(handle.metadataRemove(runKey(record.runId)));
        } finally {
          await handle.close();
        }
      },
    });
  } else {
    ctx.emit({ type: 'gc', action: 'kept', leftover: recordLeftover, why: `${record.target} is not reachable with this configuration` });
  }
  return out;
}

/**
 * Deletes a Glance image only if the run created it (it carries the run's id) and never finished it: an
 * active image is a completed snapshot whose record merely outlived it.
 */
async function deleteGlanceImage(glance: GlanceClient, id: string, runId: string): Promise<void> {
  try {
    const image = await glance.getImage(id);
    if (image[GLANCE_RUN_PROPERTY] !== runId || image.status === 'active') return;
  } catch (err) {
    if (err instanceof GlanceNotFound) return;
    throw err;
  }
  await glance.deleteImage(id, { ignoreMissing: true });
}

/**
 * How to remove a run's target — only in the configured target pool or data directory, and only when the
 * target proves it is that run's (its pending marker, a clone's parent snapshot, or an RBD image the store
 * never finished): a record is data anyone allowed to write the source pool could forge. Null when this
 * configuration cannot reach it.
 */
function targetRemoval(ctx: GcContext, sessions: Sessions, record: RunRecord): (() => Promise<void>) | null {
  const target = record.target;
  if (target.startsWith('rbd://')) {
    if (ctx.target.kind !== 'rbd') return null;
    const parts = target.slice('rbd://'.length).split('/').map(decodeURIComponent);
    if (parts.length !== 3 || parts[1] !== ctx.target.pool) return null;
    const [fsid, pool, name] = parts as [string, string, string];
    const reachable = sessionsFor(fsid, sessions);
    if (reachable.length === 0) return null;
    return () =>
      withSessions(reachable, async (s) => {
        const io = await s.pool(pool);
        if (!(await provesRun(io, name, record))) {
          ctx.emit({ type: 'gc-skipped', location: target, why: `not removed: nothing shows it belongs to run ${record.runId}` });
          return;
        }
        await removeClone(io, name, record.runId);
      });
  }
  if (target.startsWith('file://')) {
    if (ctx.target.kind !== 'file') return null;
    const path = decodeURI(target.slice('file://'.length));
    const dir = dirname(path);
    if (dir !== resolve(ctx.target.dataDir)) return null;
    return () => removeFileTarget(dir, basename(path), record.runId);
  }
  return null;
}

/** Whether the image in the target pool is the run's: its marker, its parent, or no `snap` (never finished). */
async function provesRun(io: Ioctx, name: string, record: RunRecord): Promise<boolean> {
  return withImage(io, name, { readOnly: true }, false, async (image) => {
    const marker = decodePendingMarker((await image.metadataGet(PENDING_KEY)) ?? '');
    if (marker) return marker.runId === record.runId;
    // A finished instant snapshot waiting for its flatten: the run completed; the record merely outlived it.
    if ((await image.metadataGet(FLATTEN_KEY)) !== null) return false;
    if (record.method === 'direct') return (await image.parentInfo())?.snapshot === record.sourceSnap && record.sourceSnap !== null;
    return !(await image.snapList()).some((s) => s.namespace === 'user' && s.name === TARGET_SNAP);
  });
}

/**
 * Removes a file-store image with its pending file and the store's temporary files. With `runId`, the image
 * itself only when its pending file names that run.
 */
async function removeFileTarget(dir: string, imageId: string, runId?: string): Promise<void> {
  const pending = join(dir, pendingFileName(imageId));
  const marker = decodePendingMarker(await readFile(pending, 'utf8').catch(() => ''));
  if (runId === undefined || marker?.runId === runId) {
    await rm(join(dir, imageId), { force: true });
  }
  // FileStore writes through `.<id>.<random>.tmp` in the same directory.
  const prefix = `.${imageId}.`;
  for (const n of await readdir(dir).catch(() => [] as string[])) {
    if (n.startsWith(prefix) && n.endsWith('.tmp')) await rm(join(dir, n), { force: true });
  }
  await rm(pending, { force: true });
}
