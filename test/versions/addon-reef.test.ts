// ceph-rbd-napi as built once on Debian 12 (against its librbd 16, Pacific) against a Ceph 18.2 Reef
// cluster (issue 14): connect, create, write/read, snapshots, clones, diffIterate, omap write ops and reads,
// a mon command and a mgr command (Reef's rbd_support). The same calls against Pacific are test/native's.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as rbd from 'ceph-rbd-napi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { leftoversIn } from '../support/leftovers.js';
import { uniqueName } from '../support/testbed.js';
import { versionsTestbed } from '../support/versions-bed.js';
import { chunk, connect, destroyImage, MiB } from '../native/helpers.js';

const env = versionsTestbed({ pacific: false });
const leftovers = leftoversIn(() => ({ clusters: [env.clusters.a] }));
let cluster: rbd.Cluster;
let io: rbd.Ioctx;

beforeAll(async () => {
  cluster = await connect(env.clusters.a);
  io = await cluster.openIoctx('vms');
});
afterAll(async () => {
  await io?.close();
  await cluster?.close();
});

describe('ceph-rbd-napi (librbd 16) against Ceph 18.2 Reef', () => {
  it('this process runs the host librbd 16 while the cluster runs 18.2.7 reef', async () => {
    // The addon links librbd.so.1 from the host (Debian 12: librbd1 16.2.x); nothing was rebuilt for Reef.
    const maps = readFileSync('/proc/self/maps', 'utf8');
    expect(maps).toMatch(/\/(usr\/)?lib\/x86_64-linux-gnu\/librbd\.so\.1/);
    expect(maps).not.toContain('/var/cache/snapstore');
    // `dpkg-query -W` prints `librbd1<TAB>version`.
    expect(execFileSync('dpkg-query', ['-W', 'librbd1'], { encoding: 'utf8' })).toMatch(/^librbd1\t(\d+:)?16\.2\./);
    const { output } = await cluster.monCommand({ prefix: 'versions', format: 'json' });
    const overall = Object.keys((JSON.parse(output.toString()) as { overall: Record<string, number> }).overall);
    expect(overall).toEqual([expect.stringMatching(/^ceph version 18\.2\.7 .* reef /)]);
    expect(env.clusters.a.release).toBe('reef');
  });

  it('creates with Reef default features, writes, reads, snapshots, clones (format 2) and diffs', async () => {
    const before = await leftovers.snapshot();
    const name = uniqueName('reef-addon');
    const child = `${name}-child`;
    try {
      // No features given: the cluster's ceph.conf keeps Ceph's own default (--stock-features).
      await io.createImage(name, 64 * MiB);
      const image = await io.openImage(name);
      try {
        expect((await image.stat()).featureNames).toEqual(['layering', 'exclusive-lock', 'object-map', 'fast-diff', 'deep-flatten']);
        await image.write(0, chunk(1));
        await image.write(32 * MiB, chunk(2));
        await image.flush();
        expect((await image.read(32 * MiB, 4 * MiB)).equals(chunk(2))).toBe(true);
        await image.snapCreate('s1');
        await image.write(8 * MiB, chunk(3));
        const changed = await image.diffIterate({ fromSnapshot: 's1' });
        expect(changed.filter((e) => e.exists)).toEqual([{ offset: 8 * MiB, length: 4 * MiB, exists: true }]);
        const all = (await image.diffIterate()).filter((e) => e.exists).map((e) => e.offset);
        expect(all).toEqual([0, 8 * MiB, 32 * MiB]);
      } finally {
        await image.close();
      }
      // Clone format 2 (require-min-compat-client mimic): no protect needed.
      await io.clone(name, 's1', io, child);
      const c = await io.openImage(child, { readOnly: true });
      try {
        expect((await c.parentInfo())?.image).toBe(name);
        expect((await c.read(32 * MiB, 4 * MiB)).equals(chunk(2))).toBe(true);
        expect((await c.read(8 * MiB, 4 * MiB)).equals(Buffer.alloc(4 * MiB))).toBe(true);
      } finally {
        await c.close();
      }
    } finally {
      await destroyImage(io, child);
      await destroyImage(io, name);
    }
    await leftovers.expectUnchanged(before);
  });

  it('omap write ops with compare-and-set, reads and listing', async () => {
    const oid = uniqueName('reef-omap');
    try {
      await rbd.writeOp(io, oid, [{ op: 'create', exclusive: true }, { op: 'omapSet', entries: { k1: 'v1', k2: Buffer.from([0, 255]) } }]);
      expect((await rbd.omapGet(io, oid, ['k1', 'k2', 'none'])).get('k2')).toEqual(Buffer.from([0, 255]));
      const stale = await rbd.writeOp(io, oid, [{ op: 'omapCmp', equals: { k1: 'old' } }, { op: 'omapSet', entries: { k1: 'x' } }]).catch((e: unknown) => e);
      expect(rbd.isCompareFailed(stale)).toBe(true);
      await rbd.writeOp(io, oid, [{ op: 'omapCmp', equals: { k1: 'v1' } }, { op: 'omapSet', entries: { k1: 'v2' } }]);
      const listed = await rbd.omapListAll(io, oid, 'k');
      expect([...listed.keys()]).toEqual(['k1', 'k2']);
      expect(listed.get('k1')?.toString()).toBe('v2');
    } finally {
      await rbd.removeObject(io, oid).catch(() => {});
    }
    await expect(rbd.omapGet(io, oid, ['k1'])).rejects.toBeInstanceOf(rbd.NotFoundError);
  });

  it('a mgr command reaches Reef\'s rbd_support (task list), a bad one is refused with a typed error', async () => {
    const { output } = await cluster.mgrCommand({ prefix: 'rbd task list', format: 'json' }, undefined, { timeoutMs: 30_000 });
    expect(JSON.parse(output.toString())).toEqual([]);
    await expect(cluster.mgrCommand({ prefix: 'rbd task no-such-command' }, undefined, { timeoutMs: 30_000 })).rejects.toBeInstanceOf(rbd.RbdError);
  });
});
