// How snapstore names what it creates on the source side and marks what is not finished yet, so that `gc`
// can find the leftovers of a killed run — and only those. Two kinds of marks:
//
//  - the run record, RBD metadata on the SOURCE image, key `snapstore.run.<uuid>`: written before the run
//    creates anything and removed last, so while it exists the run is unfinished. It lists everything the
//    run may have created (source snapshot, target, Glance image), which is how gc finds a partial copy in
//    another cluster or a Glance image.
//  - the pending marker on the image the run writes in the target store, kept by the store (Store.markPending,
//    AddOptions.pending; where and how is the driver's business): removed just before the record, so an
//    unfinished target is recognisable even without its record — and gc removes a target a record names
//    only when the target proves it belongs to that run.
//
// Both carry the start time and the owner (host, pid and the pid's start time, so that gc on the same host
// can tell a live run from a dead one and never removes the objects of a run still in progress).
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';

/** Every source snapshot snapstore takes is named `snapstore-<uuid>`. */
export const SNAP_PREFIX = 'snapstore-';
/** The scratch image `check` creates and removes to learn whether the source user may write the target pool. */
export const PROBE_PREFIX = 'snapstore-probe-';
/** Metadata key prefix of run records on source images. */
export const RUN_KEY_PREFIX = 'snapstore.run.';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function newRunId(): string {
  return randomUUID();
}

export function sourceSnapName(runId: string): string {
  return `${SNAP_PREFIX}${runId}`;
}

/**
 * The snapshot an incremental run takes and keeps as the disk's common point (incremental/pairing.ts).
 * Deliberately not `snapstore-<uuid>`: gc's scan removes those when no run record accounts for them.
 */
export const COMMON_POINT_PREFIX = 'snapstore-cp-';

export function commonPointName(runId: string): string {
  return `${COMMON_POINT_PREFIX}${runId}`;
}

/** Whether `name` is a snapshot run `runId` takes: its own, or (incremental) its common point. */
function isRunSnap(name: string, runId: string): boolean {
  return name === sourceSnapName(runId) || name === commonPointName(runId);
}

/**
 * A UUIDv7 (RFC 9562: the first 48 bits are the Unix time in ms): a probe image's name then says when it
 * was made, which is all gc needs to know about an image that lives well under a second.
 */
export function uuidV7(now = Date.now()): string {
  const b = randomBytes(16);
  b.writeUIntBE(now, 0, 6);
  b.writeUInt8((b.readUInt8(6) & 0x0f) | 0x70, 6);
  b.writeUInt8((b.readUInt8(8) & 0x3f) | 0x80, 8);
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function probeImageName(): string {
  return `${PROBE_PREFIX}${uuidV7()}`;
}

/** When a probe image was made (ms since the epoch), or null when the name is not a probe's. */
export function probeTime(name: string): number | null {
  if (!isProbeImage(name)) return null;
  const id = name.slice(PROBE_PREFIX.length);
  if (id[14] !== '7') return null;
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}

/**
 * Cookie of the advisory lock a run holds on its clone while it works on it. Its point is gc: breaking it
 * makes librbd blocklist the (dead) holder, which drops the holder's watch at once — otherwise librbd
 * refuses to remove the clone until the OSD times the watch out.
 */
export function lockCookie(runId: string): string {
  return `${SNAP_PREFIX}${runId}`;
}

/** Glance property naming the run that created an image: gc deletes a Glance image only when it matches. */
export const GLANCE_RUN_PROPERTY = 'snapstore_run';

export function runKey(runId: string): string {
  return `${RUN_KEY_PREFIX}${runId}`;
}

/** The run id inside a snapshot name snapstore made, or null for any other snapshot. */
export function runIdOfSnap(name: string): string | null {
  if (!name.startsWith(SNAP_PREFIX)) return null;
  const id = name.slice(SNAP_PREFIX.length);
  return UUID.test(id) ? id : null;
}

export function isProbeImage(name: string): boolean {
  return name.startsWith(PROBE_PREFIX) && UUID.test(name.slice(PROBE_PREFIX.length));
}

/** Who runs a snapshot: enough to tell, on the same host, whether that process still lives. */
export interface Owner {
  /** The host id: SNAPSTORE_HOST_ID when set (hosts whose hostnames clash), else the hostname. */
  host: string;
  pid: number;
  /**
   * The PID namespace (`/proc/self/ns/pid`, e.g. `pid:[4026531836]`): a pid is only meaningful in its own
   * namespace, so a process in another container on the same host is never judged by it. Absent in marks
   * of older versions (then the pid is not trusted either).
   */
  pidNs?: string | null;
  /** Kernel start time of the pid (clock ticks since boot), so a recycled pid does not look alive. */
  pidStart: string | null;
  /** /proc/sys/kernel/random/boot_id: a pid from before a reboot is dead whatever its number. */
  bootId: string | null;
}

function readProc(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** Field 22 (starttime) and field 3 (state) of /proc/<pid>/stat; the comm field may contain spaces. */
function procStat(pid: number): { state: string; start: string } | null {
  const stat = readProc(`/proc/${pid}/stat`);
  if (!stat) return null;
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0] ?? '', start: fields[19] ?? '' };
}

let self: Owner | undefined;

function pidNamespace(): string | null {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return null;
  }
}

export function currentOwner(): Owner {
  self ??= {
    host: process.env.SNAPSTORE_HOST_ID || hostname(),
    pid: process.pid,
    pidNs: pidNamespace(),
    pidStart: procStat(process.pid)?.start ?? null,
    bootId: readProc('/proc/sys/kernel/random/boot_id')?.trim() ?? null,
  };
  return self;
}

/**
 * `alive` when the owner is a running process on this host, `dead` when it is known not to be (same host
 * and PID namespace, and its boot is over or its pid is gone or reused), `unknown` when this process cannot
 * tell: another host, another PID namespace (a container), or a mark of an older version that names none.
 */
export function ownerState(owner: Owner): 'alive' | 'dead' | 'unknown' {
  const me = currentOwner();
  if (owner.host !== me.host) return 'unknown';
  if (owner.bootId && me.bootId && owner.bootId !== me.bootId) return 'dead';
  if (!owner.pidNs || !me.pidNs || owner.pidNs !== me.pidNs) return 'unknown';
  const stat = procStat(owner.pid);
  if (!stat || stat.state === 'Z' || stat.state === 'X') return 'dead';
  if (owner.pidStart && stat.start !== owner.pidStart) return 'dead';
  return 'alive';
}

/** The pending marker on an unfinished target (the text the store keeps for it). */
export interface PendingMarker {
  v: 1;
  runId: string;
  startedAt: string;
  owner: Owner;
  /** The path that makes the target (absent in marks of older versions). */
  method?: 'direct' | 'copy';
  /** `rbd://fsid/pool/image` of the disk, or `file:///path`. */
  source: string;
  /** The source snapshot the run took (a clone hangs from it), or null when it took none. */
  sourceSnap: string | null;
}

/** The marker a run of this process puts on the image it is making, stamped now. */
export function pendingMarker(runId: string, method: 'direct' | 'copy', source: string, sourceSnap: string | null): PendingMarker & { method: 'direct' | 'copy' } {
  return { v: 1, runId, startedAt: new Date().toISOString(), owner: currentOwner(), method, source, sourceSnap };
}

/** What a run records on its source image before creating anything (and updates as it goes). */
export interface RunRecord {
  v: 1;
  runId: string;
  startedAt: string;
  owner: Owner;
  method: 'direct' | 'copy';
  source: string;
  /** The snapshot the run takes of the disk (`snapstore-<uuid>`), or null when it reads an existing one. */
  sourceSnap: string | null;
  /**
   * Where the run writes the image: its location in the target store (`Store.locationOf`; older versions
   * wrote `rbd://fsid/pool/id` for RBD), or `glance:<id>` when Glance stores it.
   */
  target: string;
  /** The image's id in the target store (absent in records of older versions). */
  imageId?: string;
  /** The Glance image, when the run created it (then gc deletes it) or used one given to it (then gc leaves it). */
  glance: { id: string; created: boolean } | null;
  /**
   * Set when the run failed and could not remove everything: the run is over (gc need not wait for its
   * process to die) and gc finishes the removal.
   */
  abandoned?: boolean;
}

export function encodeMark(mark: PendingMarker | RunRecord): string {
  return JSON.stringify(mark);
}

function isOwner(v: unknown): v is Owner {
  const o = v as Owner;
  return !!o && typeof o.host === 'string' && typeof o.pid === 'number';
}

/** A marker read back from Ceph; null for anything snapstore did not write (gc must leave it alone). */
export function decodePendingMarker(text: string): PendingMarker | null {
  try {
    const m = JSON.parse(text) as PendingMarker;
    if (m?.v !== 1 || typeof m.runId !== 'string' || !isOwner(m.owner) || typeof m.startedAt !== 'string') return null;
    if (typeof m.source !== 'string') return null;
    if (m.method !== undefined && m.method !== 'direct' && m.method !== 'copy') return null;
    if (m.sourceSnap !== null && (typeof m.sourceSnap !== 'string' || !isRunSnap(m.sourceSnap, m.runId))) return null;
    return m;
  } catch {
    return null;
  }
}

export function decodeRunRecord(text: string): RunRecord | null {
  try {
    const r = JSON.parse(text) as RunRecord;
    if (r?.v !== 1 || typeof r.runId !== 'string' || !UUID.test(r.runId) || !isOwner(r.owner)) return null;
    if (typeof r.startedAt !== 'string' || typeof r.source !== 'string' || typeof r.target !== 'string') return null;
    if (r.sourceSnap !== null && !isRunSnap(r.sourceSnap, r.runId)) return null;
    if (r.imageId !== undefined && typeof r.imageId !== 'string') return null;
    return r;
  } catch {
    return null;
  }
}

export function describeOwner(owner: Owner): string {
  return `${owner.host}:${owner.pid}`;
}
