// What gc's scanners share: the context they scan with, the rule that decides whether a leftover may go
// (old enough, and its owner not a live process on this host), and the removal groups they collect.
import type { CephCluster, Image, Ioctx } from '../../ceph/index.js';
import type { RbdSourceConfig } from '../../config/types.js';
import type { GlanceClient } from '../../glance/client.js';
import type { Store } from '../../store.js';
import { isNotFound } from '../classify.js';
import { errorText, type Logger } from '../events.js';
import { describeOwner, ownerState, type Owner } from '../names.js';
import type { Verdict } from '../journal/liveness.js';
import type { Leftover } from '../types.js';

export interface GcContext {
  source: { config: RbdSourceConfig; session: () => Promise<CephCluster> } | null;
  /** The target store: its pending images, and the targets run records name. */
  store: () => Promise<Store>;
  glance: GlanceClient | null;
  emit: Logger;
}

export interface Removal {
  leftover: Leftover;
  remove: () => Promise<void>;
}

/** A trashed snapstore snapshot: a leftover only if no clone uses it, which only removing it tells. */
export interface Trashed {
  io: Ioctx;
  image: string;
  snap: string;
  leftover: Leftover;
}

/** One gc pass: what the scanners found and may remove. */
export class Scan {
  private readonly seen = new Set<string>();
  /** Each group runs in order (a clone before its parent snapshot, the record last); groups run in parallel. */
  readonly groups: Removal[][] = [];
  readonly trashed: Trashed[] = [];

  constructor(
    readonly ctx: GcContext,
    /** The disks' cluster, as the source user (who makes snapshots, clones and probes). */
    readonly source: CephCluster | null,
    readonly store: Store,
    readonly now: number,
    readonly olderThanMs: number,
    /** Also open every image (versions before the journal and the stores' pending indexes left no entries). */
    readonly scanImages = false,
  ) {}

  /**
   * What the journal says about each run it holds (read first): a run with a live lease is never touched,
   * whatever its age; one whose lease expired, or whose owner is provably dead, is taken at once.
   */
  readonly verdicts = new Map<string, Verdict>();

  /** Runs of committed group snapshots that gc finishes (gc/groups.ts): journal-runs.ts leaves them alone. */
  readonly finishing = new Set<string>();

  /**
   * Whether `leftover` may be removed: its run's journal entry decides when there is one; otherwise it is
   * old enough and `owner` (when it has one) is not running here.
   */
  qualifies(leftover: Leftover, owner: Owner | null): boolean {
    const verdict = leftover.runId === null ? undefined : this.verdicts.get(leftover.runId);
    if (verdict && !verdict.take) {
      this.ctx.emit({ type: 'gc', action: 'kept', leftover, why: verdict.why });
      return false;
    }
    if (verdict?.take) return true;
    const started = leftover.startedAt === null ? null : Date.parse(leftover.startedAt);
    if (started !== null && this.now - started < this.olderThanMs) {
      this.ctx.emit({ type: 'gc', action: 'kept', leftover, why: `younger than ${this.olderThanMs} ms` });
      return false;
    }
    if (owner && ownerState(owner) === 'alive') {
      this.ctx.emit({ type: 'gc', action: 'kept', leftover, why: `owner alive (${describeOwner(owner)})` });
      return false;
    }
    return true;
  }

  /** Keeps `location` out of every group added later: a scanner that read more about it decided already. */
  claim(location: string): void {
    this.seen.add(location);
  }

  /** Adds a removal group, without what an earlier group already removes. */
  add(group: Removal[]): void {
    const fresh = group.filter((r) => !this.seen.has(r.leftover.location));
    for (const r of fresh) this.seen.add(r.leftover.location);
    if (fresh.length) this.groups.push(fresh);
  }
}

export function toLeftover(kind: Leftover['kind'], location: string, runId: string | null, owner: Owner | null, startedAt: number | null): Leftover {
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
export async function readImage<T>(ctx: GcContext, io: Ioctx, name: string, read: (image: Image) => Promise<T>): Promise<T | null> {
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
