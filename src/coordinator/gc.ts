// gc: finds what killed runs left behind and removes it — only things snapstore provably made:
//  - run records (`snapstore.run.<uuid>` metadata on source images) and everything a record lists;
//  - `snapstore-<uuid>` snapshots on source images;
//  - clones carrying the `snapstore.pending` marker in the target pool;
//  - `snapstore-probe-<uuidv7>` scratch images in the target pool.
// A leftover qualifies when it is at least `olderThanMs` old and its owner is not a live process on this
// host (an owner on another host is judged by age alone).
import { readdir, unlink } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { Image, Ioctx } from 'ceph-rbd-napi';
import type { RbdSourceConfig, TargetConfig } from '../config/types.js';
import type { GlanceClient } from '../glance/client.js';
import { isNotFound } from './classify.js';
import { errorText, type Logger } from './events.js';
import {
  PENDING_KEY,
  RUN_KEY_PREFIX,
  decodePendingMarker,
  decodeRunRecord,
  describeOwner,
  ownerState,
  probeTime,
  runIdOfSnap,
  runKey,
  type Owner,
  type RunRecord,
} from './names.js';
import { ignoreNotFound, removeImageFully, removeSnapshot, whileBusy } from './rbd-util.js';
import type { RbdSession } from './session.js';
import { parseSource } from './source.js';
import type { GcOptions, GcReport, Leftover } from './types.js';

export interface GcContext {
  source: { config: RbdSourceConfig; session: () => Promise<RbdSession> } | null;
  target: TargetConfig;
  targetSession: (() => Promise<RbdSession>) | null;
  glance: GlanceClient | null;
  emit: Logger;
}

const DEFAULT_OLDER_THAN_MS = 60 * 60 * 1000;
/** A probe lives well under a second; one this young may belong to a `check` running right now. */
const PROBE_MIN_AGE_MS = 10 * 60 * 1000;
/**
 * A killed process's watch on an image lingers until the OSD times it out (osd_client_watch_timeout,
 * 30 s by default); until then librbd refuses to remove the image (EBUSY). gc waits that long, no longer.
 */
const WATCH_WAIT = { attempts: 45, delayMs: 1000, backoff: false };

interface Removal {
  leftover: Leftover;
  remove: () => Promise<void>;
}

export async function collectGarbage(ctx: GcContext, opts: GcOptions): Promise<GcReport> {
  const olderThanMs = opts.olderThanMs ?? DEFAULT_OLDER_THAN_MS;
  const dryRun = opts.dryRun ?? false;
  const now = Date.now();
  const sessions = await openSessions(ctx);
  const seen = new Set<string>();
  /** Groups of removals; each group runs in order (a clone before its parent snapshot), groups in parallel. */
  const groups: Removal[][] = [];

  const qualifies = (startedAt: string | number | null, owner: Owner | null, leftover: Omit<Leftover, 'runId' | 'owner' | 'startedAt'> & Partial<Leftover>): boolean => {
    const started = typeof startedAt === 'string' ? Date.parse(startedAt) : startedAt;
    const full = toLeftover(leftover, owner, started);
    if (started !== null && Number.isFinite(started) && now - started < olderThanMs) {
      ctx.emit({ type: 'gc', action: 'kept', leftover: full, why: `younger than ${olderThanMs} ms` });
      return false;
    }
    if (owner && ownerState(owner) === 'alive') {
      ctx.emit({ type: 'gc', action: 'kept', leftover: full, why: `its process ${describeOwner(owner)} is still running` });
      return false;
    }
    return true;
  };

  const add = (group: Removal[]) => {
    const fresh = group.filter((r) => !seen.has(r.leftover.location));
    for (const r of fresh) seen.add(r.leftover.location);
    if (fresh.length) groups.push(fresh);
  };

  // Source pools: run records and snapstore snapshots.
  if (sessions.source && ctx.source) {
    const session = sessions.source;
    const pool = ctx.source.config.pool;
    const io = await session.ioctx(pool);
    for (const name of await io.listImages()) {
      const info = await readImage(io, name, (image) => Promise.all([image.metadataList(), image.snapList()]));
      if (!info) continue;
      const [meta, snaps] = info;
      const recorded = new Set<string>();
      for (const [key, value] of Object.entries(meta)) {
        if (!key.startsWith(RUN_KEY_PREFIX)) continue;
        const record = decodeRunRecord(value);
        if (!record || runKey(record.runId) !== key) continue;
        if (record.sourceSnap) recorded.add(record.sourceSnap);
        const where = `rbd://${session.fsid}/${pool}/${name}`;
        if (!qualifies(record.startedAt, record.owner, { kind: 'run-record', location: `${where}#${key}`, runId: record.runId })) continue;
        add(runRemovals(ctx, sessions, io, name, record));
      }
      for (const snap of snaps) {
        const snapName = snap.namespace === 'trash' ? snap.originalName ?? '' : snap.name;
        const runId = runIdOfSnap(snapName);
        if (!runId || recorded.has(snapName) || snap.namespace !== 'user') continue;
        const location = `rbd://${session.fsid}/${pool}/${name}/${snapName}`;
        if (!qualifies(snap.timestamp?.getTime() ?? null, null, { kind: 'source-snapshot', location, runId })) continue;
        add([
          {
            leftover: toLeftover({ kind: 'source-snapshot', location, runId }, null, snap.timestamp?.getTime() ?? null),
            remove: () => removeSourceSnapshot(io, name, snapName),
          },
        ]);
      }
    }
  }

  // Target pool: unfinished clones and probe images.
  const targetSession = sessions.target;
  if (targetSession && ctx.target.kind === 'rbd') {
    const pool = ctx.target.pool;
    const io = await targetSession.ioctx(pool);
    const probes: Array<{ name: string; parent: boolean }> = [];
    for (const name of await io.listImages()) {
      const location = `rbd://${targetSession.fsid}/${pool}/${name}`;
      const born = probeTime(name);
      if (born !== null) {
        if (now - born < Math.max(olderThanMs, PROBE_MIN_AGE_MS)) continue;
        const st = await io.statImage(name).catch(() => null);
        if (st) probes.push({ name, parent: st.parent !== null });
        continue;
      }
      const marker = await readImage(io, name, (image) => image.metadataGet(PENDING_KEY));
      if (!marker) continue;
      const m = decodePendingMarker(marker);
      if (!m) continue;
      if (!qualifies(m.startedAt, m.owner, { kind: 'clone', location, runId: m.runId })) continue;
      const group: Removal[] = [
        { leftover: toLeftover({ kind: 'clone', location, runId: m.runId }, m.owner, Date.parse(m.startedAt)), remove: () => removeImage(io, name) },
      ];
      const src = parseMarkedSource(m.source, sessions);
      if (src) {
        group.push({
          leftover: toLeftover({ kind: 'source-snapshot', location: `${m.source}/${m.sourceSnap}`, runId: m.runId }, m.owner, Date.parse(m.startedAt)),
          remove: async () => removeSourceSnapshot(await src.session.ioctx(src.pool), src.image, m.sourceSnap),
        });
      }
      add(group);
    }
    // Clones of probes go before the probes they hang from.
    probes.sort((x, y) => Number(y.parent) - Number(x.parent));
    const probeGroup = probes.map(({ name }) => ({
      leftover: toLeftover({ kind: 'probe-image', location: `rbd://${targetSession.fsid}/${pool}/${name}`, runId: null }, null, probeTime(name)),
      remove: () => removeImage(io, name),
    }));
    add(probeGroup);
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
            // What depends on it (the parent snapshot of a clone that stays) must stay too.
            break;
          }
        }
      }),
    );
  }
  return { found, removed, dryRun };
}

interface Sessions {
  source: RbdSession | null;
  target: RbdSession | null;
}

async function openSessions(ctx: GcContext): Promise<Sessions> {
  const [source, target] = await Promise.all([ctx.source?.session() ?? null, ctx.targetSession?.() ?? null]);
  return { source, target };
}

function toLeftover(l: { kind: Leftover['kind']; location: string; runId?: string | null }, owner: Owner | null, startedAt: number | null): Leftover {
  return {
    kind: l.kind,
    location: l.location,
    runId: l.runId ?? null,
    owner: owner ? describeOwner(owner) : null,
    startedAt: startedAt !== null && Number.isFinite(startedAt) ? new Date(startedAt).toISOString() : null,
  };
}

/** Reads something from an image opened read-only; null when the image went away meanwhile. */
async function readImage<T>(io: Ioctx, name: string, read: (image: Image) => Promise<T>): Promise<T | null> {
  let image: Image;
  try {
    image = await io.openImage(name, { readOnly: true });
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
  try {
    return await read(image);
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  } finally {
    await image.close();
  }
}

/** Removes an image snapstore made, waiting out the watch of a killed process. */
function removeImage(io: Ioctx, name: string): Promise<void> {
  return whileBusy(() => removeImageFully(io, name), WATCH_WAIT);
}

async function removeSourceSnapshot(io: Ioctx, image: string, snap: string): Promise<void> {
  let handle: Image;
  try {
    handle = await io.openImage(image);
  } catch (err) {
    if (isNotFound(err)) return;
    throw err;
  }
  try {
    await whileBusy(() => removeSnapshot(handle, snap), WATCH_WAIT);
  } finally {
    await handle.close();
  }
}

/** The session and pool/image a marker's `source` names, when gc can reach that cluster. */
function parseMarkedSource(source: string, sessions: Sessions): { session: RbdSession; pool: string; image: string } | null {
  try {
    const src = parseSource(source, undefined);
    if (src.kind !== 'rbd' || src.fsid === null) return null;
    const session = [sessions.source, sessions.target].find((s) => s?.fsid === src.fsid);
    return session ? { session, pool: src.pool, image: src.image } : null;
  } catch {
    return null;
  }
}

/** The removals a stale run record stands for, in the order they must happen; the record goes last. */
function runRemovals(ctx: GcContext, sessions: Sessions, sourceIo: Ioctx, image: string, record: RunRecord): Removal[] {
  const out: Removal[] = [];
  const started = Date.parse(record.startedAt);
  const leftover = (kind: Leftover['kind'], location: string) => toLeftover({ kind, location, runId: record.runId }, record.owner, started);
  if (record.glance?.created && ctx.glance) {
    const glance = ctx.glance;
    const id = record.glance.id;
    out.push({
      leftover: leftover('glance-image', `glance:${id}`),
      remove: async () => {
        await glance.deleteImage(id, { ignoreMissing: true });
      },
    });
  }
  const target = targetRemoval(record.target, sessions);
  if (target) out.push({ leftover: leftover(record.method === 'direct' ? 'clone' : 'target', record.target), remove: target });
  if (record.sourceSnap) {
    const snap = record.sourceSnap;
    out.push({
      leftover: leftover('source-snapshot', `${record.source}/${snap}`),
      remove: () => removeSourceSnapshot(sourceIo, image, snap),
    });
  }
  out.push({
    leftover: leftover('run-record', `${record.source}#${runKey(record.runId)}`),
    remove: async () => {
      const handle = await sourceIo.openImage(image);
      try {
        await ignoreNotFound(handle.metadataRemove(runKey(record.runId)));
      } finally {
        await handle.close();
      }
    },
  });
  return out;
}

/** How to remove a run's target; null when gc cannot reach it (another cluster, a Glance image it did not make). */
function targetRemoval(target: string, sessions: Sessions): (() => Promise<void>) | null {
  if (target.startsWith('rbd://')) {
    const parts = target.slice('rbd://'.length).split('/').map(decodeURIComponent);
    if (parts.length !== 3) return null;
    const [fsid, pool, name] = parts as [string, string, string];
    const session = [sessions.target, sessions.source].find((s) => s?.fsid === fsid);
    if (!session) return null;
    return async () => removeImage(await session.ioctx(pool), name);
  }
  if (target.startsWith('file://')) {
    const path = decodeURI(target.slice('file://'.length));
    return async () => {
      await unlink(path).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
      // FileStore writes through `.<id>.<random>.tmp` in the same directory.
      const prefix = `.${basename(path)}.`;
      const dir = dirname(path);
      const names = await readdir(dir).catch(() => [] as string[]);
      for (const n of names) {
        if (n.startsWith(prefix) && n.endsWith('.tmp')) await unlink(`${dir}/${n}`).catch(() => {});
      }
    };
  }
  // `glance:<id>`: Glance stored it; the Glance image (if the run made it) is removed on its own.
  return null;
}
