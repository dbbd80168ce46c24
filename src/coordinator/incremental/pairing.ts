// The pairing behind an incremental snapshot. The source keeps a snapstore-owned snapshot of the disk as
// the common point (`snapstore-cp-<runId>`; gc's `snapstore-<uuid>` scan never matches it) and, since RBD
// metadata is per image, a disk metadata entry keyed by that snapshot's name naming the snapshot's id and
// the target image made from it. The target image records (through the store's IncrementalTarget) the
// source snapshot it holds. Both must agree, and both ends must still be there, for the next snapshot to be
// made from that image: a snapshot deleted and re-created under the same name has another id, a pairing
// copied onto another image or pointing at another image names a snapshot the image does not record.
import type { Image, Ioctx } from '../../ceph/index.js';
import type { IncrementalTarget } from '../../store.js';
import { errorText } from '../events.js';
import { COMMON_POINT_PREFIX } from '../names.js';
import { ignoreNotFound, removeSnapshot, withImage } from '../rbd-util.js';

/** Disk metadata key prefix of a pairing; the rest of the key is the common point's snapshot name. */
export const PAIR_KEY_PREFIX = 'snapstore.common.';

/** A pairing as the source records it. */
export interface Pairing {
  v: 1;
  /** The common point: the disk's snapshot, by name and id. */
  snap: string;
  snapId: string;
  /** The target store (IncrementalTarget.identity) and the image made from the snapshot. */
  target: string;
  imageId: string;
  at: string;
}

/** What the target image records: the source snapshot it holds the content of. */
export interface BaseRecord {
  v: 1;
  source: string;
  snap: string;
  snapId: string;
}

export type Verdict = { ok: true; pairing: Pairing; baseSize: number } | { ok: false; reason: string };

export function pairKey(snap: string): string {
  return `${PAIR_KEY_PREFIX}${snap}`;
}

export function encodeBaseRecord(source: string, snap: string, snapId: string): string {
  return JSON.stringify({ v: 1, source, snap, snapId } satisfies BaseRecord);
}

function parsePairing(key: string, text: string): Pairing | null {
  try {
    const p = JSON.parse(text) as Partial<Pairing>;
    const fields = [p.snap, p.snapId, p.target, p.imageId, p.at];
    if (p.v !== 1 || fields.some((f) => typeof f !== 'string') || pairKey(p.snap as string) !== key) return null;
    return p as Pairing;
  } catch {
    return null;
  }
}

/** The disk's pairings with `target` (every target when null), newest first. */
export async function listPairings(disk: Image, target: string | null): Promise<Pairing[]> {
  const found: Pairing[] = [];
  for (const [key, value] of Object.entries(await disk.metadataList())) {
    if (!key.startsWith(PAIR_KEY_PREFIX)) continue;
    const p = parsePairing(key, value);
    if (p && (target === null || p.target === target)) found.push(p);
  }
  return found.sort((x, y) => (x.at < y.at ? 1 : x.at > y.at ? -1 : 0));
}

/**
 * Whether the newest pairing of `disk` (the disk `source`) with `inc` still holds; null when the disk was
 * never paired with this target. An older pairing is tried when a newer one broke.
 */
export async function verifyPairing(disk: Image, source: string, inc: IncrementalTarget): Promise<Verdict | null> {
  const pairings = await listPairings(disk, await inc.identity());
  if (pairings.length === 0) return null;
  const snaps = await disk.snapList();
  let first: string | null = null;
  for (const p of pairings) {
    const why = await brokenBecause(p, source, snaps, inc);
    if (typeof why !== 'string') return { ok: true, pairing: p, baseSize: why.size };
    first ??= why;
  }
  return { ok: false, reason: first ?? 'no pairing holds' };
}

async function brokenBecause(p: Pairing, source: string, snaps: Awaited<ReturnType<Image['snapList']>>, inc: IncrementalTarget): Promise<string | { size: number }> {
  const snap = snaps.find((s) => s.namespace === 'user' && s.name === p.snap);
  if (!snap) return `the common point ${source}@${p.snap} is gone`;
  if (String(snap.id) !== p.snapId) return `the common point ${source}@${p.snap} was replaced (snapshot id ${snap.id}, the pairing names ${p.snapId})`;
  const base = await inc.inspect(p.imageId).catch((err: unknown) => ({ ok: false as const, reason: `the previous image ${p.imageId} cannot be read (${errorText(err)})` }));
  if (!base.ok) return base.reason;
  if (base.record !== encodeBaseRecord(source, p.snap, p.snapId)) {
    return `the previous image ${p.imageId} does not record ${source}@${p.snap} (id ${p.snapId}): a stale or forged pairing`;
  }
  return { size: base.sizeBytes };
}

/**
 * Removes a common point: its pairing first, so that a snapshot left by a failure is just an unpaired one;
 * the snapshot only when its name is a common point's (a forged pairing may name anyone's snapshot).
 */
export async function removeCommonPoint(disk: Image, p: Pick<Pairing, 'snap'>): Promise<void> {
  await ignoreNotFound(disk.metadataRemove(pairKey(p.snap)));
  if (p.snap.startsWith(COMMON_POINT_PREFIX)) await removeSnapshot(disk, p.snap);
}

/** Keeps the `keep` newest pairings of `disk` with `target`; removes the rest with their snapshots. */
export async function pruneCommonPoints(disk: Image, target: string, keep: number): Promise<string[]> {
  const removed: string[] = [];
  for (const p of (await listPairings(disk, target)).slice(keep)) {
    await removeCommonPoint(disk, p);
    removed.push(p.snap);
  }
  return removed;
}

/** Before the disk goes (prepareSourceRemoval): every common point it keeps, for any store; their names. */
export async function removeCommonPoints(io: Ioctx, image: string): Promise<string[]> {
  return withImage(io, image, {}, [], async (disk) => {
    const pairings = await listPairings(disk, null);
    for (const p of pairings) await removeCommonPoint(disk, p);
    return pairings.map((p) => p.snap);
  });
}
