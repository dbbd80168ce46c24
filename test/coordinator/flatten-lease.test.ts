// The flattener's lease: an image whose flatten lease another host holds (and renews) is left alone, with
// why; once that lease ran out, a flattener takes the image over — blocklisting the old owner's client
// and breaking its lock — and finishes it. Short leases (SNAPSTORE_LEASE_SECONDS) keep it quick.
import { setTimeout as sleep } from 'node:timers/promises';
import * as rbdNapi from 'ceph-rbd-napi';
import { describe, expect, it } from 'vitest';
import { Flattener, type FlattenerEvent } from '../../src/coordinator/index.js';
import { JOURNAL_OBJECT } from '../../src/coordinator/journal/index.js';
import { testbed, uniqueName } from '../support/testbed.js';
import { coordinator, exportMd5, imageInfo, makeDisk, rbdTarget, removeImage, sourceConfig } from './helpers.js';

const LEASE_SECONDS = 6;
process.env.SNAPSTORE_LEASE_SECONDS = String(LEASE_SECONDS);
const EXPIRY_MS = LEASE_SECONDS * 1500;

const env = testbed();
const a = env.clusters.a;

/** Removes a journal entry of the images pool, whatever a failed test left in it. */
async function dropEntry(key: string): Promise<void> {
  const admin = await rbdNapi.Cluster.connect({ confPath: a.conf, user: 'admin' });
  try {
    const io = await admin.openIoctx('images');
    await rbdNapi.writeOp(io, JOURNAL_OBJECT, [{ op: 'omapRm', keys: [key] }]).catch(() => {});
    await io.close();
  } finally {
    await admin.close();
  }
}

describe('a flatten lease held by another host', () => {
  it('keeps other flatteners off while it lasts; after it ran out one takes over, blocklists the holder and finishes', async () => {
    const disk = uniqueName('flatten-lease');
    const source = await makeDisk(a, disk, 64, 16);
    const c = coordinator({ source: sourceConfig(a), target: rbdTarget(a, 'nova') });
    // The other host's flattener: its own connection, its lock on the clone, its journal entry.
    const other = await rbdNapi.Cluster.connect({ confPath: a.conf, user: 'nova' });
    // The connection its journal entry names (breaking the lock blocklists the lock's holder; this one is
    // blocklisted only by the takeover itself).
    const leaseHolder = await rbdNapi.Cluster.connect({ confPath: a.conf, user: 'nova' });
    let id = '';
    try {
      id = (await c.snapshot(source, { flatten: 'background' })).imageId;
      const before = await exportMd5(a, `vms/${disk}`);
      const io = await other.openIoctx('images');
      const clone = await io.openImage(id);
      const owner = { host: 'other-host', pid: 4242, pidStart: null, bootId: 'b', pidNs: 'pid:[1]' };
      await clone.lockAcquireExclusive(`snapstore-flattener ${JSON.stringify({ owner, at: Date.now(), lease: true })}`);
      const key = `flatten.${id}`;
      const entry = { v: 1, key, owner, client: await rbdNapi.clientAddress(leaseHolder), leaseUntil: new Date(Date.now() + LEASE_SECONDS * 1000).toISOString() };
      await rbdNapi.writeOp(io, JOURNAL_OBJECT, [{ op: 'create', exclusive: false }, { op: 'omapSet', entries: { [key]: JSON.stringify(entry) } }]);

      const events: FlattenerEvent[] = [];
      const f = new Flattener({ source: sourceConfig(a), target: { pool: 'images' }, images: [id], logger: (e) => events.push(e) });
      try {
        // Even with the smallest stale-lock threshold, a lease that runs is never broken.
        const early = await f.runOnce();
        expect(early.flattened).toEqual([]);
        expect(early.skipped).toEqual([{ image: id, why: expect.stringMatching(/^being flattened: lease valid until .*other-host:4242/) }]);
        expect((await imageInfo(a, `images/${id}`)).parent).toBeDefined();

        await sleep(EXPIRY_MS + 500);
        const late = await f.runOnce();
        expect(late.flattened).toEqual([id]);
        expect(events).toContainEqual(expect.objectContaining({ type: 'lock-broken', image: id, why: expect.stringMatching(/^lease expired at /) }));
      } finally {
        await f.close();
      }
      expect((await imageInfo(a, `images/${id}`)).parent).toBeUndefined();
      expect(await exportMd5(a, `images/${id}@snap`)).toBe(before);
      // The old owner's client is blocklisted: it can write nothing more.
      const lio = await leaseHolder.openIoctx('images');
      await expect(rbdNapi.writeOp(lio, JOURNAL_OBJECT, [{ op: 'omapSet', entries: { [key]: 'late write' } }])).rejects.toBeInstanceOf(rbdNapi.RbdError);
      await lio.close().catch(() => {});
      // And the lease is given back: no entry left.
      const admin = await rbdNapi.Cluster.connect({ confPath: a.conf, user: 'admin' });
      try {
        const aio = await admin.openIoctx('images');
        expect((await rbdNapi.omapGet(aio, JOURNAL_OBJECT, [key])).size).toBe(0);
        await aio.close();
      } finally {
        await admin.close();
      }
      await clone.close().catch(() => {});
      await io.close().catch(() => {});
    } finally {
      await other.close().catch(() => {});
      await leaseHolder.close().catch(() => {});
      if (id) await dropEntry(`flatten.${id}`);
      await c.close();
      if (id) await removeImage(a, `images/${id}`);
    }
  }, 120_000);
});
