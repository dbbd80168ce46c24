// Group snapshots the journal holds (`group.<groupId>` entries, journal/group-entry.ts) whose lease ran
// out or whose owner is dead. Before its commit a group's disks are unfinished runs like any other, which
// journal-runs.ts removes (their own entries ran out with the group's); this removes what the group itself
// made — its group snapshot, its temporary group — and then its entry. After the commit every disk's image
// is complete: gc finishes the disks (clears the target's pending mark when it names the disk's run,
// removes the run record and the run's journal entry) instead of removing them, and tells the other
// scanners to keep them. Runs before scanJournal.
import type { CephCluster } from '../../ceph/index.js';
import { decodeGroup, GROUP_ENTRY_PREFIX, groupEntryKey, type GroupMember } from '../journal/group-entry.js';
import { decodeEntry, JOURNAL_OBJECT, judge, RunJournal, runEntryKey } from '../journal/index.js';
import type { GlanceClient } from '../../glance/client.js';
import { GlanceNotFound } from '../../glance/errors.js';
import { GLANCE_GROUP_PROPERTY } from '../group/member.js';
import { decodePendingMarker, GLANCE_RUN_PROPERTY, runKey, type Owner } from '../names.js';
import { ignoreNotFound, withImage } from '../rbd-util.js';
import { removeGroupLeftovers } from '../group/ceph.js';
import { markedSource } from './removals.js';
import { toLeftover, type Removal, type Scan } from './scan.js';

export async function scanGroups(scan: Scan): Promise<void> {
  const session = scan.source;
  const config = scan.ctx.source?.config;
  if (!session || !config) return;
  const journal = new RunJournal(await session.pool(config.pool));
  for (const [key, text] of await journal.list(GROUP_ENTRY_PREFIX)) {
    const entry = decodeEntry(key, text);
    const g = entry ? decodeGroup(entry) : null;
    if (!entry || !g || key !== groupEntryKey(g.groupId)) {
      scan.ctx.emit({ type: 'gc-skipped', location: `journal ${key}`, why: 'not a journal entry snapstore wrote' });
      continue;
    }
    const verdict = judge(entry, scan.now);
    const leftover = toLeftover('run-record', `rbd://${session.fsid}/${config.pool}/${JOURNAL_OBJECT}#${key}`, g.groupId, entry.owner, Date.parse(g.startedAt));
    if (!verdict.take) {
      scan.ctx.emit({ type: 'gc', action: 'kept', leftover, why: verdict.why });
      continue;
    }
    const group: Removal[] = [];
    for (const m of g.members) {
      if (g.committed) {
        scan.finishing.add(m.runId);
        scan.verdicts.set(m.runId, { take: false, why: `its group snapshot ${g.groupId} committed: gc finishes it` });
        group.push(finishMember(scan, session, config.pool, m));
      } else if (m.glanceId && scan.ctx.glance) {
        group.push(uncommittedGlanceImage(scan.ctx.glance, g.groupId, m, entry.owner));
      }
    }
    const cephGroup = { pool: g.pool, name: g.group, temporary: g.temporary, snap: g.snap };
    group.push({
      leftover: toLeftover('source-snapshot', `rbd://${session.fsid}/${g.pool}/group:${g.group}@${g.snap}`, g.groupId, entry.owner, Date.parse(g.startedAt)),
      remove: () => removeGroupLeftovers(session, cephGroup),
    });
    group.push({ leftover, remove: () => journal.swap(key, text, null) });
    scan.add(group);
  }
}

/**
 * A disk's Glance image of a group that never committed: registered (active) already, yet not a finished
 * snapshot — the run-record scanner keeps active images, so the group removes it, when it carries both the
 * group's and the disk's run's id.
 */
function uncommittedGlanceImage(glance: GlanceClient, groupId: string, m: GroupMember, owner: Owner): Removal {
  return {
    leftover: toLeftover('glance-image', `glance:${m.glanceId}`, m.runId, owner, null),
    remove: async () => {
      const id = m.glanceId as string;
      try {
        const image = await glance.getImage(id);
        if (image[GLANCE_GROUP_PROPERTY] !== groupId || image[GLANCE_RUN_PROPERTY] !== m.runId) return;
      } catch (err) {
        if (err instanceof GlanceNotFound) return;
        throw err;
      }
      await glance.deleteImage(id, { ignoreMissing: true });
    },
  };
}

/** A committed group's disk: what its run had left to do after the commit, done (each part idempotent). */
function finishMember(scan: Scan, session: CephCluster, journalPool: string, m: GroupMember): Removal {
  const src = markedSource(m.source, session);
  const pool = src?.pool ?? journalPool;
  return {
    leftover: toLeftover('run-record', `rbd://${session.fsid}/${pool}/${JOURNAL_OBJECT}#${runEntryKey(m.runId)}`, m.runId, null, null),
    remove: async () => {
      const marker = decodePendingMarker((await scan.store.readPending(m.imageId)) ?? '');
      if (marker?.runId === m.runId) await scan.store.clearPending(m.imageId);
      if (src) await withImage(await session.pool(src.pool), src.image, {}, undefined, (img) => ignoreNotFound(img.metadataRemove(runKey(m.runId))));
      const journal = new RunJournal(await session.pool(pool));
      const text = await journal.read(runEntryKey(m.runId));
      if (text !== null) await journal.swap(runEntryKey(m.runId), text, null);
    },
  };
}


