// A run's entry in its source pool's journal: taken before the run creates anything, renewed while it
// works, removed at its end (or left abandoned when its rollback could not remove everything).
import type { CephCluster, Ioctx } from '../../ceph/index.js';
import { loadNative } from '../../ceph/index.js';
import { SnapstoreError } from '../../errors.js';
import type { Logger } from '../events.js';
import type { RunRecord } from '../names.js';
import { RunJournal, runEntryKey } from './journal.js';
import { Lease } from './lease.js';

/** This connection's client address (for a taker to blocklist); null when Ceph will not say. */
export async function clientOf(session: CephCluster): Promise<string | null> {
  try {
    return await (await loadNative()).clientAddress(session.native);
  } catch {
    return null;
  }
}

/**
 * Registers the run in the journal of `io`'s pool and keeps its lease until released; `lost` is aborted
 * (with LEASE_LOST) when another process takes the entry over.
 */
export async function registerRun(session: CephCluster, io: Ioctx, record: RunRecord, emit: Logger, lost?: AbortController): Promise<Lease> {
  const client = await clientOf(session);
  const key = runEntryKey(record.runId);
  return Lease.take(new RunJournal(io), key, { record }, {
    client,
    onEvent: (what, detail) => {
      emit({ type: 'gc-skipped', location: `journal ${key}`, why: `lease ${what}: ${detail}` });
      if (what === 'lost') lost?.abort(new SnapstoreError('LEASE_LOST', `run ${record.runId} stopped: ${detail}`));
    },
  });
}
