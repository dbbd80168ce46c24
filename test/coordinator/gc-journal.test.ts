// gc over journal entries anyone with the disks' user could have written: an entry with a bad percent-escape
// does not stop gc from collecting the rest, and an entry naming images and a Glance image snapstore did not
// make removes neither (only the entry and what provably was the run's).
import { randomUUID } from 'node:crypto';
import * as rbdNapi from 'ceph-rbd-napi';
import { describe, expect, it } from 'vitest';
import type { CoordinatorEvent } from '../../src/coordinator/index.js';
import { JOURNAL_OBJECT } from '../../src/coordinator/journal/index.js';
import { rbd, testbed, uniqueName } from '../support/testbed.js';
import { coordinator, deleteGlanceImage, expectClean, glanceStatus, makeDisk, rbdTarget, removeImage, snaps, sourceConfig } from './helpers.js';

const env = testbed();
const a = env.clusters.a;

/** A journal entry as a dead run on another host would have left it (its lease long over). */
function deadEntry(runId: string, record: Record<string, unknown>): [string, string] {
  const owner = { host: 'elsewhere', pid: 1, pidStart: null, bootId: null };
  const key = `run.${runId}`;
  const startedAt = new Date(Date.now() - 3_600_000).toISOString();
  const full = { v: 1, runId, startedAt, owner, glance: null, ...record };
  return [key, JSON.stringify({ v: 1, key, owner, client: null, leaseUntil: new Date(Date.now() - 600_000).toISOString(), record: full })];
}

async function withVms<T>(use: (io: rbdNapi.Ioctx) => Promise<T>): Promise<T> {
  const c = await rbdNapi.Cluster.connect({ confPath: a.conf, user: 'admin' });
  try {
    const io = await c.openIoctx('vms');
    try {
      return await use(io);
    } finally {
      await io.close();
    }
  } finally {
    await c.close();
  }
}

describe('gc and forged or broken journal entries', () => {
  it('a bad percent-escape and a forged target stop nothing and remove nothing that is not the run’s', async () => {
    const disk = uniqueName('gc-journal');
    const source = await makeDisk(a, disk, 16, 0);
    // A finished image and a queued Glance image that snapstore did not make.
    const victim = uniqueName('gc-victim');
    await rbd(a, ['create', `images/${victim}`, '--size', '4M']);
    await rbd(a, ['snap', 'create', `images/${victim}@snap`]);
    const created = await fetch(`${env.glance.url}/v2/images`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: victim, disk_format: 'raw', container_format: 'bare' }),
    });
    const glanceVictim = ((await created.json()) as { id: string }).id;

    const badEscape = randomUUID();
    const forged = randomUUID();
    const real = randomUUID();
    // The real dead run took its snapshot of the disk and died.
    await rbd(a, ['snap', 'create', `vms/${disk}@snapstore-${real}`], 'nova');
    const entries = Object.fromEntries([
      deadEntry(badEscape, { method: 'copy', source, sourceSnap: null, target: `rbd://${a.fsid}/images/%E0%A4%A` }),
      deadEntry(forged, { method: 'copy', source, sourceSnap: null, target: `rbd://${a.fsid}/images/${victim}/snap`, imageId: victim, glance: { id: glanceVictim, created: true } }),
      deadEntry(real, { method: 'copy', source, sourceSnap: `snapstore-${real}`, target: 'glance:none' }),
    ]);
    await withVms((io) => rbdNapi.writeOp(io, JOURNAL_OBJECT, [{ op: 'create', exclusive: false }, { op: 'omapSet', entries }]));

    const events: CoordinatorEvent[] = [];
    const c = coordinator({ source: sourceConfig(a), target: rbdTarget(a), glance: { endpoint: env.glance.url } }, events);
    try {
      const report = await c.gc({});
      // The real dead run's snapshot and entry are gone, whatever the other entries hold.
      expect(report.removed.filter((l) => l.runId === real).map((l) => l.kind).sort()).toEqual(['run-record', 'run-record', 'source-snapshot']);
      // The bad escape names nothing of this store: kept, with why.
      expect(report.seen.filter((l) => l.runId === badEscape).map((l) => [l.action, l.why])).toContainEqual(['kept', expect.stringContaining('not reachable')]);
      expect((await snaps(a, `images/${victim}`)).map((s) => s.name)).toEqual(['snap']);
      expect(await glanceStatus(env.glance.url, glanceVictim)).toBe('queued');
      expect(events).toContainEqual(expect.objectContaining({ type: 'gc-skipped', why: expect.stringContaining(`nothing shows it belongs to run ${forged}`) }));
    } finally {
      await c.close();
      // What the test made, whatever happened (the entries gc kept included).
      await withVms((io) => rbdNapi.writeOp(io, JOURNAL_OBJECT, [{ op: 'omapRm', keys: Object.keys(entries) }]));
      await rbd(a, ['snap', 'rm', `vms/${disk}@snapstore-${real}`]).catch(() => {});
      await deleteGlanceImage(env.glance.url, glanceVictim);
      await removeImage(a, `images/${victim}`);
    }
    await expectClean(a, disk, []);
  });
});
