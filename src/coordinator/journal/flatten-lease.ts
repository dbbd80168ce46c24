// The flattener's lease on one image: a `flatten.<image>` entry in the journal of the pool it flattens in,
// renewed while the flatten runs. A peer takes it over only once it expired (or its owner is provably
// dead), blocklisting the old owner's client first so a stalled flattener can write nothing more.
import type { CephCluster, Ioctx } from '../../ceph/index.js';
import { loadNative } from '../../ceph/index.js';
import { decodeEntry, flattenEntryKey, JournalConflict, RunJournal, type JournalEntry } from './journal.js';
import { Lease } from './lease.js';
import { judge } from './liveness.js';
import { clientOf } from './register.js';

export type FlattenLease =
  /** `previous`: the entry taken over (its owner's RBD lock may be broken), with why. */
  | { lease: Lease; previous: { entry: JournalEntry; why: string } | null }
  | { skipped: string };

/** Takes the image's flatten lease, or says who holds it. `onLost` runs when a peer takes it over later. */
export async function takeFlattenLease(session: CephCluster, io: Ioctx, image: string, onLost: (why: string) => void): Promise<FlattenLease> {
  const journal = new RunJournal(io);
  const key = flattenEntryKey(image);
  const client = await clientOf(session);
  const opts = { client, onEvent: (what: string, detail: string) => what === 'lost' && onLost(detail) };
  try {
    return { lease: await Lease.take(journal, key, {}, opts), previous: null };
  } catch (err) {
    if (!(err instanceof JournalConflict)) throw err;
  }
  const text = await journal.read(key);
  if (text === null) return { skipped: 'its flatten lease changed hands just now' };
  const entry = decodeEntry(key, text);
  if (!entry) return { skipped: `its journal entry ${key} is not one snapstore wrote` };
  const verdict = judge(entry, Date.now());
  if (!verdict.take) return { skipped: `being flattened: ${verdict.why}` };
  if (verdict.blocklist) await (await loadNative()).blocklistAdd(session.native, verdict.blocklist, 0).catch(() => {});
  try {
    return { lease: await Lease.take(journal, key, {}, opts, text), previous: { entry, why: verdict.why } };
  } catch (err) {
    if (err instanceof JournalConflict) return { skipped: 'another flattener took its expired lease first' };
    throw err;
  }
}
