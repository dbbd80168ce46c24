// What planning knows about the target store: whether (and where) it can hold clones of the disks.

/**
 * The target store: its kind (for words only) and, when it can hold clones of the disks (Store.clones), the
 * cluster and pool they go to.
 */
export interface TargetFacts {
  kind: string;
  fsid?: string;
  pool?: string;
  /** A store in a directory: which (for words only). */
  dataDir?: string;
}

/** Where clones go, when the target can hold them. */
export function clonesGoTo(t: TargetFacts): { fsid: string; pool: string } | null {
  return t.fsid !== undefined && t.pool !== undefined ? { fsid: t.fsid, pool: t.pool } : null;
}
