// The runs the source pool's journal holds (one omap read, however many disks the pool has): a run whose
// lease still runs, or whose owner is alive, is kept and reported with why; one whose lease expired (its
// owner's client blocklisted first, so a stalled owner cannot go on writing) or whose owner is provably
// dead is removed like a stale run record, its journal entry last (compare-and-set on the text read, so an
// owner that renewed meanwhile keeps it).
import { loadNative, type CephCluster } from '../../ceph/index.js';
import { errorText } from '../events.js';
import { decodeEntry, JOURNAL_OBJECT, judge, RUN_ENTRY_PREFIX, RunJournal, type JournalEntry, type Verdict } from '../journal/index.js';
import { markedSource } from './removals.js';
import { runRemovals } from './run-records.js';
import { toLeftover, type Removal, type Scan } from './scan.js';

export async function scanJournal(scan: Scan): Promise<void> {
  const session = scan.source;
  const config = scan.ctx.source?.config;
  if (!session || !config) return;
  const journal = new RunJournal(await session.pool(config.pool));
  for (const [key, text] of await journal.list(RUN_ENTRY_PREFIX)) {
    const entry = decodeEntry(key, text);
    const record = entry?.record;
    if (!entry || !record || key !== `${RUN_ENTRY_PREFIX}${record.runId}`) {
      scan.ctx.emit({ type: 'gc-skipped', location: `journal ${key}`, why: 'not a journal entry snapstore wrote' });
      continue;
    }
    if (scan.finishing.has(record.runId)) continue;
    const verdict = judge(entry, scan.now);
    scan.verdicts.set(record.runId, verdict);
    const leftover = toLeftover('run-record', `rbd://${session.fsid}/${config.pool}/${JOURNAL_OBJECT}#${key}`, record.runId, entry.owner, Date.parse(record.startedAt));
    if (!verdict.take) {
      scan.ctx.emit({ type: 'gc', action: 'kept', leftover, why: verdict.why });
      continue;
    }
    const drop: Removal = { leftover, remove: () => journal.swap(key, text, null) };
    // A file source's run (paths/file-source.ts) has no record on a disk: its entry is all there is of it.
    const isFile = record.source.startsWith('file:');
    const src = isFile ? null : markedSource(record.source, session);
    if (!isFile && !src) {
      scan.ctx.emit({ type: 'gc', action: 'kept', leftover, why: `its source ${record.source} is not in this configuration's cluster` });
      continue;
    }
    const disk = src ? { io: await src.session.pool(src.pool), image: src.image } : null;
    const group = await runRemovals(scan, disk, record, [drop]);
    scan.add(withBlocklist(session, verdict, entry, group, scan));
  }
}

/** Blocklists the owner's client before the group's first removal (breaking its locks, removing its images). */
function withBlocklist(session: CephCluster, verdict: Verdict, entry: JournalEntry, group: Removal[], scan: Scan): Removal[] {
  const address = verdict.take ? verdict.blocklist : null;
  const first = group[0];
  if (!address || !first) return group;
  const remove = async (): Promise<void> => {
    try {
      await (await loadNative()).blocklistAdd(session.native, address, 0);
    } catch (err) {
      // Not fatal: librbd blocklists a lock's holder when breaking it anyway; only a bare copy lacks it.
      scan.ctx.emit({ type: 'gc-skipped', location: `client ${address}`, why: `could not blocklist ${entry.owner.host}:${entry.owner.pid}: ${errorText(err)}` });
    }
    await first.remove();
  };
  return [{ leftover: first.leftover, remove }, ...group.slice(1)];
}
