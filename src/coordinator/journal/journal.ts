// The run journal: one RADOS object per disks' pool (`snapstore.journal`), whose omap holds one entry per
// run (`run.<runId>`) and per flatten in progress (`flatten.<imageId>`), the way Ceph keeps its own queues
// (rbd_directory, rbd_trash, the mgr's task queue). Each entry names its owner (host id, boot id, PID
// namespace, pid) and carries a lease the owner renews while it works. Every change is a compare-and-set
// on the entry's exact text (rados omap_cmp): two processes never both take, renew or remove one entry.
// The images pool's journal also indexes the queued flattens (`queued.<imageId>`, ../flatten-queue.ts).
//
// Why the disks' (source) pool: a run's own user (nova's) writes there already (its snapshot), the pool
// exists whatever the target store is (a file store, another cluster), and gc and the flattener already
// connect to it. One object per pool keeps gc's scan at one omap read, however many disks the pool has.
import type { Ioctx } from '../../ceph/index.js';
import { loadNative } from '../../ceph/index.js';
import { SnapstoreError } from '../../errors.js';
import type { Owner, RunRecord } from '../names.js';
import type { GroupRecord } from './group-entry.js';

/** The journal object's name in the pool. */
export const JOURNAL_OBJECT = 'snapstore.journal';
export const RUN_ENTRY_PREFIX = 'run.';
export const FLATTEN_ENTRY_PREFIX = 'flatten.';
/** `queued.<imageId>`: an instant snapshot's clone waiting for its flatten (see ../flatten-queue.ts). */
export const QUEUED_ENTRY_PREFIX = 'queued.';

export interface JournalEntry {
  v: 1;
  /** `run.<runId>` or `flatten.<imageId>` (the omap key). */
  key: string;
  owner: Owner;
  /** The owner's RADOS client address (what gc blocklists before taking its work over), when known. */
  client: string | null;
  /** ISO time until which the owner holds the entry; it renews the lease well before. */
  leaseUntil: string;
  /** A run's record: what it may have created. */
  record?: RunRecord;
  /** A group snapshot's record (`group.<groupId>` entries, group-entry.ts). */
  group?: GroupRecord;
  /** The run failed and gave up what it could not undo: gc may take it at once. */
  abandoned?: boolean;
}

export function runEntryKey(runId: string): string {
  return `${RUN_ENTRY_PREFIX}${runId}`;
}

export function flattenEntryKey(imageId: string): string {
  return `${FLATTEN_ENTRY_PREFIX}${imageId}`;
}

function isOwner(v: unknown): v is Owner {
  const o = v as Owner;
  return !!o && typeof o.host === 'string' && typeof o.pid === 'number';
}

/** An entry read back; null for text snapstore did not write (left alone, reported by the caller). */
export function decodeEntry(key: string, text: string): JournalEntry | null {
  try {
    const e = JSON.parse(text) as JournalEntry;
    if (e?.v !== 1 || e.key !== key || !isOwner(e.owner) || typeof e.leaseUntil !== 'string') return null;
    if (!Number.isFinite(Date.parse(e.leaseUntil))) return null;
    if (e.client !== null && typeof e.client !== 'string') return null;
    return e;
  } catch {
    return null;
  }
}

/** Thrown when an entry was not as expected (another process changed or took it): nothing was written. */
export class JournalConflict extends SnapstoreError {
  constructor(message: string, options: ErrorOptions = {}) {
    super('LEASE_LOST', message, options);
  }
}

/** The journal of one pool, through an open I/O context of a user who may write it. */
export class RunJournal {
  constructor(readonly io: Ioctx) {}

  /** Writes `text` under `key` only if `expected` is what is there now ('' = absent). @throws JournalConflict */
  async swap(key: string, expected: string, text: string | null): Promise<void> {
    const rbd = await loadNative();
    const steps: Parameters<typeof rbd.writeOp>[2][number][] = [];
    // Creating is idempotent; only the first write of an entry may need it.
    steps.push(expected === '' ? { op: 'create', exclusive: false } : { op: 'assertExists' });
    steps.push({ op: 'omapCmp', equals: { [key]: expected } });
    steps.push(text === null ? { op: 'omapRm', keys: [key] } : { op: 'omapSet', entries: { [key]: text } });
    try {
      await rbd.writeOp(this.io, JOURNAL_OBJECT, steps);
    } catch (err) {
      if (rbd.isCompareFailed(err) || (expected !== '' && err instanceof rbd.NotFoundError)) {
        throw new JournalConflict(`journal entry ${key} changed meanwhile`, { cause: err });
      }
      throw err;
    }
  }

  /** Writes `text` under `key` whatever is there (for index entries, which no lease guards). */
  async put(key: string, text: string): Promise<void> {
    const rbd = await loadNative();
    await rbd.writeOp(this.io, JOURNAL_OBJECT, [{ op: 'create', exclusive: false }, { op: 'omapSet', entries: { [key]: text } }]);
  }

  /** The entry's text, or null when absent (or no journal yet). */
  async read(key: string): Promise<string | null> {
    const rbd = await loadNative();
    try {
      return (await rbd.omapGet(this.io, JOURNAL_OBJECT, [key])).get(key)?.toString('utf8') ?? null;
    } catch (err) {
      if (err instanceof rbd.NotFoundError) return null;
      throw err;
    }
  }

  /** Every entry's text whose key starts with `prefix` (one paged omap read; empty when no journal yet). */
  async list(prefix: string): Promise<Map<string, string>> {
    const rbd = await loadNative();
    try {
      const all = await rbd.omapListAll(this.io, JOURNAL_OBJECT, prefix);
      return new Map([...all].map(([k, v]) => [k, v.toString('utf8')]));
    } catch (err) {
      if (err instanceof rbd.NotFoundError) return new Map();
      throw err;
    }
  }
}
