// Snapshots across Ceph versions (issue 14), on a bed of this file's own: cluster `a` Ceph 18.2 Reef (its
// default image features, clone format 2, a ceph-mgr), cluster `b` the host's 16.2 Pacific (clone format 1,
// layering,deep-flatten). The direct and the instant path on Reef; the copy Pacific → Reef and Reef →
// Pacific (content exact, sparse, nothing left behind); `check` naming both versions and what differs.
// snapstore's client side is the host's Pacific librbd throughout, and the rbd/ceph CLI that checks results
// is the host's too (a Pacific CLI against a Reef cluster). Incremental copies both ways: only the changes
// cross, into an image made from the previous one inside the target cluster, whichever Ceph it runs.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { versionReasons, type ClusterVersions } from '../../src/coordinator/cluster-versions.js';
import { Flattener, type CoordinatorEvent } from '../../src/coordinator/index.js';
import { leftoversOf, producedBy } from '../support/leftovers.js';
import { rbd, uniqueName, type ClusterInfo } from '../support/testbed.js';
import { requireTrixieRoot, versionsTestbed } from '../support/versions-bed.js';
import { coordinator, exportMd5, imageInfo, makeDisk, onDisk, rbdTarget, removeImage, sourceConfig, usedBytes } from '../coordinator/helpers.js';

const env = versionsTestbed();
const leftovers = leftoversOf(env);
const MiB = 1024 * 1024;
const run = promisify(execFile);
const cli = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const REEF_FEATURES = ['deep-flatten', 'exclusive-lock', 'fast-diff', 'layering', 'object-map'];
let reef: ClusterInfo;
let pacific: ClusterInfo;

beforeAll(() => {
  reef = env.clusters.a;
  pacific = env.clusters.b;
});

async function parentOf(cluster: ClusterInfo, id: string): Promise<unknown> {
  return (await imageInfo(cluster, `images/${id}`)).parent ?? null;
}

describe('on a Reef cluster (its default features)', () => {
  it('the direct path clones and flattens: content exact, Reef features kept, nothing left behind', async () => {
    const disk = uniqueName('reef-direct');
    const source = await makeDisk(reef, disk, 128, 16);
    expect((await imageInfo(reef, `vms/${disk}`)).features?.sort()).toEqual(REEF_FEATURES);
    const md5 = await exportMd5(reef, `vms/${disk}`);
    const nothing = await leftovers.snapshot();
    const events: CoordinatorEvent[] = [];
    const c = coordinator({ source: sourceConfig(reef), target: rbdTarget(reef) }, events);
    try {
      const plan = await c.check(source);
      expect(plan.method).toBe('direct');
      expect(plan.reasons).toContainEqual(expect.objectContaining({ code: 'CEPH_VERSIONS', ok: true, message: expect.stringContaining('runs Ceph 18.2.7 reef, clone format 2') }));
      const result = await c.snapshot(source);
      expect(result).toMatchObject({ method: 'direct', flatten: 'done' });
      expect(await exportMd5(reef, `images/${result.imageId}@snap`)).toBe(md5);
      const info = await imageInfo(reef, `images/${result.imageId}`);
      expect(info.parent).toBeUndefined();
      expect(info.features?.sort()).toEqual(REEF_FEATURES);
      await leftovers.expectUnchanged(nothing, producedBy(events));
      await removeImage(reef, `images/${result.imageId}`);
    } finally {
      await c.close();
    }
  });

  // Debian 13's ceph-mgr 18.2.7 (Python 3.13) crashes (SIGSEGV in the rbd binding's progress callback)
  // as soon as rbd_support runs a flatten task, so this test's store user has no mgr cap and snapstore's
  // own Flattener flattens; the mgr's command path itself is tested in addon-reef.test.ts.
  it('an instant snapshot is usable at once and the Flattener flattens it; the disk keeps no snapshot', async () => {
    const disk = uniqueName('reef-instant');
    const source = await makeDisk(reef, disk, 64, 8);
    const md5 = await exportMd5(reef, `vms/${disk}`);
    const nothing = await leftovers.snapshot();
    const events: CoordinatorEvent[] = [];
    const c = coordinator({ source: sourceConfig(reef), target: rbdTarget(reef, 'nova') }, events);
    try {
      expect((await c.check(source)).instant).toMatchObject({ possible: true, flattenBy: { via: 'flattener' } });
      const result = await c.snapshot(source, { flatten: 'background' });
      expect(result).toMatchObject({ method: 'direct', flatten: 'pending' });
      // Readable before the flatten, through to the disk.
      expect(await parentOf(reef, result.imageId)).not.toBeNull();
      expect(await exportMd5(reef, `images/${result.imageId}@snap`)).toBe(md5);
      const f = new Flattener({ source: sourceConfig(reef), target: { pool: 'images' }, images: [result.imageId] });
      try {
        expect(await f.runOnce()).toMatchObject({ flattened: [result.imageId], failed: [] });
      } finally {
        await f.close();
      }
      expect(await parentOf(reef, result.imageId)).toBeNull();
      expect(await exportMd5(reef, `images/${result.imageId}@snap`)).toBe(md5);
      // The source snapshot went to the trash at once and left with the last child's flatten.
      expect(await rbd(reef, ['snap', 'ls', '--all', `vms/${disk}`])).toBe('');
      // Flattened: no flatten request is left on the image either.
      await leftovers.expectUnchanged(nothing, producedBy(events).map((e) => ('rbd' in e ? { ...e, meta: [] } : e)));
      await removeImage(reef, `images/${result.imageId}`);
    } finally {
      await c.close();
    }
  });
});

describe('copies between Pacific and Reef', () => {
  for (const [from, to] of [
    ['pacific', 'reef'],
    ['reef', 'pacific'],
  ] as const) {
    it(`${from} → ${to}: sparse, content exact, the target's features, nothing left behind`, async () => {
      const src = from === 'reef' ? reef : pacific;
      const dst = to === 'reef' ? reef : pacific;
      const disk = uniqueName(`x-${from}`);
      const source = await makeDisk(src, disk, 512, 16);
      const md5 = await exportMd5(src, `vms/${disk}`);
      const nothing = await leftovers.snapshot();
      const events: CoordinatorEvent[] = [];
      const c = coordinator({ source: sourceConfig(src), target: rbdTarget(dst) }, events);
      try {
        const result = await c.snapshot(source);
        expect(result).toMatchObject({ method: 'copy', sizeBytes: 512 * MiB });
        expect(result.location).toBe(`rbd://${dst.fsid}/images/${result.imageId}/snap`);
        expect(await exportMd5(dst, `images/${result.imageId}@snap`)).toBe(md5);
        // Sparse: 16 MiB of 512 written; the target's objects are 8 MiB (chunkSizeMiB), the source's 4.
        expect(await usedBytes(dst, `images/${result.imageId}`)).toBeLessThanOrEqual(2 * (await usedBytes(src, `vms/${disk}`)));
        const features = (await imageInfo(dst, `images/${result.imageId}`)).features?.sort();
        expect(features).toEqual(to === 'reef' ? REEF_FEATURES : ['deep-flatten', 'layering']);
        await leftovers.expectUnchanged(nothing, producedBy(events));
        await removeImage(dst, `images/${result.imageId}`);
      } finally {
        await c.close();
      }
    });
  }
});

describe('incremental copies between Pacific and Reef', () => {
  for (const [from, to] of [
    ['pacific', 'reef'],
    ['reef', 'pacific'],
  ] as const) {
    it(`${from} → ${to}: the second snapshot sends only what changed, content exact, the first image deletable`, async () => {
      const src = from === 'reef' ? reef : pacific;
      const dst = to === 'reef' ? reef : pacific;
      const disk = uniqueName(`inc-${from}`);
      const source = await makeDisk(src, disk, 64, 8);
      // Objects the change touches exist before the common point (librbd reports a new object whole).
      await onDisk(src, disk, (image) => image.write(32 * MiB, Buffer.alloc(4 * MiB, 0x01)));
      const c = coordinator({ source: sourceConfig(src), target: rbdTarget(dst) });
      const made: string[] = [];
      try {
        const first = await c.snapshot(source, { incremental: true });
        made.push(first.imageId);
        expect(first).toMatchObject({ method: 'copy', incremental: null });
        await onDisk(src, disk, async (image) => {
          await image.write(32 * MiB + 4096, Buffer.alloc(MiB, 0xab));
          await image.discard(0, 4 * MiB);
        });
        const md5 = await exportMd5(src, `vms/${disk}`);
        const second = await c.snapshot(source, { incremental: true });
        made.push(second.imageId);
        expect(second.incremental?.from).toBe(first.imageId);
        // The 1 MiB written crossed (to librbd's diff granularity), not the 8 MiB the disk holds.
        expect(second.incremental?.bytesSent).toBeGreaterThanOrEqual(MiB);
        expect(second.incremental?.bytesSent).toBeLessThan(2 * MiB);
        expect(await exportMd5(dst, `images/${second.imageId}@snap`)).toBe(md5);
        expect((await imageInfo(dst, `images/${second.imageId}`)).parent).toBeUndefined();
        await removeImage(dst, `images/${first.imageId}`);
        expect(await exportMd5(dst, `images/${second.imageId}@snap`)).toBe(md5);
        expect((await c.prepareSourceRemoval(source)).removedCommonPoints).toHaveLength(1);
      } finally {
        await c.close();
        for (const id of made) await removeImage(dst, `images/${id}`);
        await removeImage(src, `vms/${disk}`);
      }
    });
  }
});

describe('check across versions', () => {
  it('names both clusters\' versions, their clone formats and the Reef features the Pacific copy will lack', async () => {
    const disk = uniqueName('check-x');
    const source = await makeDisk(reef, disk, 16, 0);
    const nothing = await leftovers.snapshot();
    const c = coordinator({ source: sourceConfig(reef), target: rbdTarget(pacific) });
    try {
      const plan = await c.check(source);
      expect(plan.method).toBe('copy');
      const byCode = Object.fromEntries(plan.reasons.map((r) => [r.code, r]));
      expect(byCode.CEPH_VERSIONS?.message).toBe(
        `the source cluster ${reef.fsid} runs Ceph 18.2.7 reef, clone format 2 (require-min-compat-client mimic); ` +
          `the target cluster ${pacific.fsid} runs Ceph 16.2.15 pacific, clone format 1 (require-min-compat-client luminous) (different Ceph versions)`,
      );
      expect(byCode.CLONE_FORMATS).toMatchObject({ ok: true, message: expect.stringContaining('the source allows 2, the target 1'), fix: expect.stringContaining('set-require-min-compat-client mimic') });
      expect(byCode.TARGET_FEATURES?.message).toContain('exclusive-lock, object-map, fast-diff (not in the rbd default features the store\'s user creates images with: layering,deep-flatten)');
      // The other way: Pacific's layering,deep-flatten disk loses nothing in Reef.
      const back = coordinator({ source: sourceConfig(pacific), target: rbdTarget(reef) });
      try {
        const disk2 = uniqueName('check-back');
        const reasons = (await back.check(await makeDisk(pacific, disk2, 16, 0))).reasons.map((r) => r.code);
        expect(reasons).toContain('CEPH_VERSIONS');
        expect(reasons).not.toContain('TARGET_FEATURES');
        expect(reasons).toContain('CLONE_FORMATS');
        await removeImage(pacific, `vms/${disk2}`);
      } finally {
        await back.close();
      }
      await leftovers.expectUnchanged(nothing);
    } finally {
      await c.close();
    }
  });

  it('one cluster: one CEPH_VERSIONS finding, nothing said to differ', async () => {
    const disk = uniqueName('check-same');
    const c = coordinator({ source: sourceConfig(reef), target: rbdTarget(reef) });
    try {
      const plan = await c.check(await makeDisk(reef, disk, 16, 0));
      const versions = plan.reasons.filter((r) => ['CEPH_VERSIONS', 'CLONE_FORMATS', 'TARGET_FEATURES'].includes(r.code));
      expect(versions).toEqual([{ code: 'CEPH_VERSIONS', ok: true, message: `source and target: cluster ${reef.fsid} runs Ceph 18.2.7 reef, clone format 2 (require-min-compat-client mimic)` }]);
    } finally {
      await c.close();
    }
  });
});

describe('snapstore check (the CLI) across versions', () => {
  it('prints both versions and what differs, from nova.conf and glance-api.conf', async () => {
    const disk = uniqueName('cli-x');
    const source = await makeDisk(reef, disk, 16, 0);
    const dir = mkdtempSync(join(tmpdir(), 'versions-cli-'));
    try {
      const nova = join(dir, 'nova.conf');
      const glance = join(dir, 'glance-api.conf');
      writeFileSync(nova, `[libvirt]\nimages_rbd_pool = vms\nimages_rbd_ceph_conf = ${reef.conf}\nrbd_user = nova\n`);
      writeFileSync(glance, `[glance_store]\ndefault_store = rbd\nrbd_store_pool = images\nrbd_store_user = glance\nrbd_store_ceph_conf = ${pacific.conf}\n`);
      const { stdout } = await run(process.execPath, [cli, 'check', source, '--config', nova, '--config', glance]);
      expect(stdout).toContain(`ok   CEPH_VERSIONS: the source cluster ${reef.fsid} runs Ceph 18.2.7 reef`);
      expect(stdout).toContain(`the target cluster ${pacific.fsid} runs Ceph 16.2.15 pacific`);
      expect(stdout).toMatch(/ok {3}CLONE_FORMATS: .*\n {8}fix: ceph osd set-require-min-compat-client mimic/);
      expect(stdout).toContain('ok   TARGET_FEATURES: the source image has features the copy in the target will not have: exclusive-lock, object-map, fast-diff');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('versionReasons (what the clusters answered, turned into findings)', () => {
  const cluster = (over: Partial<ClusterVersions>): ClusterVersions => ({
    fsid: 'f1',
    versions: ['18.2.7 reef'],
    major: 18,
    cloneFormat: 2,
    requireMinCompatClient: 'mimic',
    defaultFeatures: ['layering', 'exclusive-lock', 'object-map', 'fast-diff', 'deep-flatten'],
    unknown: [],
    ...over,
  });

  it('a feature the target release cannot enable and one this client does not know are named with why', () => {
    const old = cluster({ fsid: 'f2', versions: ['14.2.22 nautilus'], major: 14 });
    const [, features] = versionReasons(cluster({}), old, ['layering', 'non-primary', 'bit12']);
    expect(features).toEqual({
      code: 'TARGET_FEATURES',
      ok: true,
      message:
        "the source image has features the copy in the target will not have: bit12 (unknown to this client's librbd, which cannot enable it); " +
        "non-primary (the target's Ceph 14 cannot enable it); the data is the same",
    });
  });

  it('a question a cluster refused is said as unknown, and decides nothing', () => {
    const refused = cluster({ fsid: 'f2', versions: null, major: null, cloneFormat: null, requireMinCompatClient: null, unknown: ['its version (mon command versions: EACCES)'] });
    const reasons = versionReasons(cluster({}), refused, ['layering']);
    expect(reasons).toEqual([
      {
        code: 'CEPH_VERSIONS',
        ok: true,
        message:
          'the source cluster f1 runs Ceph 18.2.7 reef, clone format 2 (require-min-compat-client mimic); the target cluster f2 runs an unknown Ceph; ' +
          'cluster f2: its version (mon command versions: EACCES) could not be asked',
      },
    ]);
  });
});

describe('without the Debian 13 root', () => {
  it('the Reef tests fail (never skip) with what is missing', async () => {
    await expect(requireTrixieRoot({ SNAPSTORE_TRIXIE_ROOT: '/nonexistent/snapstore-trixie' })).rejects.toThrow(
      /the Ceph 18 \(Reef\) tests need the Debian 13 root, which is missing: snapstore: trixie root: not made at \/nonexistent\/snapstore-trixie \(run scripts\/trixie-root.sh ensure/,
    );
  });
});
