// A group snapshot's entry in the journal (`group.<groupId>`, in the configured source pool's journal
// object, where gc reads): the group it snapshots (a temporary one it made, or the disks' own), the group
// snapshot, and every disk's run (run id, target image id, Glance image) — all fixed before anything is
// created. Its lease says the group run is alive. `committed` is the group's point of no return: before it
// gc removes every disk's image (they are all still marked pending), after it gc finishes the disks
// instead (clears their marks, removes their records), so a kill leaves all of the group or none of it.
import type { CephCluster, Ioctx } from '../../ceph/index.js';
import { SnapstoreError } from '../../errors.js';
import type { Logger } from '../events.js';
import { RunJournal } from './journal.js';
import { Lease } from './lease.js';
import { clientOf } from './register.js';

export const GROUP_ENTRY_PREFIX = 'group.';

export interface GroupMember {
  runId: string;
  /** The disk, `rbd://fsid/pool/image`. */
  source: string;
  /** The image's id in the target store. */
  imageId: string;
  /** The Glance image the run creates (null without Glance). */
  glanceId: string | null;
}

export interface GroupRecord {
  v: 1;
  groupId: string;
  startedAt: string;
  /** The pool of the Ceph group and its name. */
  pool: string;
  group: string;
  /** Whether the run made the group (then it removes it) or the disks were in it already. */
  temporary: boolean;
  /** The group snapshot's name. */
  snap: string;
  members: GroupMember[];
  /** Set once every disk is copied and registered and the group snapshot is gone: finish, do not remove. */
  committed: boolean;
}

export function groupEntryKey(groupId: string): string {
  return `${GROUP_ENTRY_PREFIX}${groupId}`;
}

/** The group record of an entry's text, or null for anything else. */
export function decodeGroup(entry: { group?: unknown }): GroupRecord | null {
  const g = entry.group as GroupRecord | undefined;
  if (g?.v !== 1 || typeof g.groupId !== 'string' || typeof g.pool !== 'string' || typeof g.group !== 'string') return null;
  if (typeof g.snap !== 'string' || !Array.isArray(g.members) || typeof g.temporary !== 'boolean') return null;
  return g;
}

/** Registers the group run in `io`'s pool's journal and keeps its lease until released. */
export async function registerGroup(session: CephCluster, io: Ioctx, record: GroupRecord, emit: Logger, lost?: AbortController): Promise<Lease> {
  const key = groupEntryKey(record.groupId);
  return Lease.take(new RunJournal(io), key, { group: record }, {
    client: await clientOf(session),
    onEvent: (what, detail) => {
      emit({ type: 'gc-skipped', location: `journal ${key}`, why: `lease ${what}: ${detail}` });
      if (what === 'lost') lost?.abort(new SnapstoreError('LEASE_LOST', `group snapshot ${record.groupId} stopped: ${detail}`));
    },
  });
}
