// The copy path on real clusters: across the two clusters, with a user that may not write the image pool,
// from an existing snapshot, from a file, into a file store, and through Glance when it refuses locations.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { CoordinatorEvent } from '../../src/coordinator/index.js';
import { startGlance, stopGlance } from '../../scripts/testbed.mjs';
import { leftoversOf, producedBy } from '../support/leftovers.js';
import { ownTestbed } from '../support/own-bed.js';
import { rbd, uniqueName } from '../support/testbed.js';
import {
  coordinator,
  deleteGlanceImage,
  exportMd5,
  imageInfo,
  makeDisk,
  rbdTarget,
  removeImage,
  snaps,
  sourceConfig,
  usedBytes,
} from './helpers.js';

const env = ownTestbed({ glance: true });
const leftovers = leftoversOf(env);
const MiB = 1024 * 1024;
const scratch = mkdtempSync(join(tmpdir(), 'coord-copy-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('copy path', () => {
  it('copies across clusters, sparse: bytes equal, target usage follows the data, not the size', async () => {
    const a = env.clusters.a;
    const b = env.clusters.b;
    const disk = uniqueName('coord-xcluster');
    const source = await makeDisk(a, disk, 256, 16);
    const before = await exportMd5(a, `vms/${disk}`);
    const nothing = await leftovers.snapshot();
    const events: CoordinatorEvent[] = [];
    const c = coordinator({ source: sourceConfig(a), target: rbdTarget(b) }, events);
    try {
      const plan = await c.check(source);
      expect(plan.method).toBe('copy');
      expect(plan.reasons).toContainEqual(expect.objectContaining({ code: 'SAME_CLUSTER', ok: false }));
      const result = await c.snapshot(source);
      expect(result).toMatchObject({ method: 'copy', sizeBytes: 256 * MiB, glance: null });
      // No Glance records checksums here, so `auto` computes none.
      expect(result.checksums).toBeNull();
      expect(result.fallbackReason).toContain('cluster');
      expect(result.location).toBe(`rbd://${b.fsid}/images/${result.imageId}/snap`);
      expect(await exportMd5(b, `images/${result.imageId}@snap`)).toBe(before);
      const sourceUsed = await usedBytes(a, `vms/${disk}`);
      const targetUsed = await usedBytes(b, `images/${result.imageId}`);
      // rbd du counts whole objects: the target's are 8 MiB (chunkSizeMiB), the source's 4 MiB.
      expect(targetUsed).toBeLessThanOrEqual(2 * sourceUsed);
      expect(targetUsed).toBeLessThan(64 * MiB);
      // Only the allocated extents were read.
      const allocated = events.find((e) => e.type === 'progress' && e.phase === 'allocated');
      expect(allocated).toMatchObject({ total: 256 * MiB });
      expect((allocated as { done: number }).done).toBeLessThanOrEqual(sourceUsed);
      await leftovers.expectUnchanged(nothing, producedBy(events));
      await removeImage(b, `images/${result.imageId}`);
    } finally {
      await c.close();
    }
  });

  it('copies as client.nova-ro, which may not write the image pool, and says how to fix the caps', async () => {
    const a = env.clusters.a;
    const disk = uniqueName('coord-ro');
    const source = await makeDisk(a, disk, 64, 8);
    const before = await exportMd5(a, `vms/${disk}`);
    const nothing = await leftovers.snapshot();
    const events: CoordinatorEvent[] = [];
    const c = coordinator({ source: sourceConfig(a, 'nova-ro'), target: rbdTarget(a) }, events);
    try {
      const plan = await c.check(source);
      expect(plan.method).toBe('copy');
      expect(plan.reasons).toContainEqual({
        code: 'TARGET_CAPS',
        ok: false,
        message: expect.stringContaining('client.nova-ro may not create images in pool images'),
        fix: "ceph auth caps client.nova-ro mon 'profile rbd' osd 'profile rbd pool=vms, profile rbd pool=images'",
      });
      await expect(c.snapshot(source, { mode: 'direct' })).rejects.toMatchObject({ code: 'MODE_NOT_POSSIBLE' });
      const result = await c.snapshot(source);
      expect(result.method).toBe('copy');
      expect(result.fallbackReason).toContain('may not create images');
      expect(await exportMd5(a, `images/${result.imageId}@snap`)).toBe(before);
      expect((await imageInfo(a, `images/${result.imageId}`)).parent).toBeUndefined();
      await leftovers.expectUnchanged(nothing, producedBy(events));
      await removeImage(a, `images/${result.imageId}`);
    } finally {
      await c.close();
    }
  });

  it('copies an existing snapshot as is, and leaves it alone', async () => {
    const a = env.clusters.a;
    const disk = uniqueName('coord-snapsrc');
    await makeDisk(a, disk, 64, 8);
    await rbd(a, ['snap', 'create', `vms/${disk}@mine`], 'nova');
    const atSnap = await exportMd5(a, `vms/${disk}@mine`);
    await rbd(a, ['bench', '--io-type', 'write', '--io-size', '4M', '--io-total', '8M', `vms/${disk}`], 'nova');
    const nothing = await leftovers.snapshot();
    const events: CoordinatorEvent[] = [];
    const c = coordinator({ source: sourceConfig(a), target: rbdTarget(env.clusters.b) }, events);
    try {
      const result = await c.snapshot(`rbd://${a.fsid}/vms/${disk}/mine`);
      expect(await exportMd5(env.clusters.b, `images/${result.imageId}@snap`)).toBe(atSnap);
      expect((await snaps(a, `vms/${disk}`)).map((s) => s.name)).toEqual(['mine']);
      await leftovers.expectUnchanged(nothing, producedBy(events));
      await removeImage(env.clusters.b, `images/${result.imageId}`);
    } finally {
      await c.close();
    }
  });

  it('copies a raw file into a file store, refuses a qcow2 file and a missing one', async () => {
    const data = Buffer.concat([randomBytes(3 * MiB), Buffer.alloc(8 * MiB), randomBytes(MiB + 123)]);
    const file = join(scratch, 'disk.raw');
    writeFileSync(file, data);
    const dataDir = join(scratch, 'store');
    const nothing = await leftovers.snapshot({ dirs: [dataDir] });
    const events: CoordinatorEvent[] = [];
    const c = coordinator({ target: { kind: 'file', dataDir } }, events);
    try {
      const result = await c.snapshot(`file://${file}`);
      expect(result).toMatchObject({ method: 'copy', sizeBytes: data.length, location: `file://${join(dataDir, result.imageId)}` });
      expect(execFileSync('cmp', [file, join(dataDir, result.imageId)]).length).toBe(0);
      const qcow = join(scratch, 'disk.qcow2');
      writeFileSync(qcow, Buffer.concat([Buffer.from([0x51, 0x46, 0x49, 0xfb]), Buffer.alloc(1020)]));
      await expect(c.snapshot(`file://${qcow}`)).rejects.toMatchObject({ code: 'BAD_SOURCE' });
      await expect(c.snapshot(`file://${join(scratch, 'nope')}`)).rejects.toMatchObject({ code: 'SOURCE_NOT_FOUND' });
      await expect(c.snapshot('rbd://x/y')).rejects.toMatchObject({ code: 'BAD_SOURCE' });
      // The image file and nothing else: no pending mark, no partial file of the refused sources.
      await leftovers.expectUnchanged(nothing, producedBy(events));
    } finally {
      await c.close();
    }
  });

  it('checksums: auto hashes for a Glance without the 2.17 locations API, off does not, inline always does', async () => {
    const a = env.clusters.a;
    const b = env.clusters.b;
    const disk = uniqueName('coord-sums');
    // 96 MiB: above the size from which the two hashes run in worker threads.
    const source = await makeDisk(a, disk, 96, 24);
    const md5 = await exportMd5(a, `vms/${disk}`);
    const sha512 = createHash('sha512').update(execFileSync('rbd', ['-c', a.conf, 'export', '--no-progress', `vms/${disk}`, '-'], { maxBuffer: 128 * MiB })).digest('hex');
    const nothing = await leftovers.snapshot();
    const glanceEvents: CoordinatorEvent[] = [];
    const plainEvents: CoordinatorEvent[] = [];
    const withGlance = coordinator({ source: sourceConfig(a), target: rbdTarget(a), glance: { endpoint: env.glance.url } }, glanceEvents);
    const noGlance = coordinator({ source: sourceConfig(a), target: rbdTarget(b) }, plainEvents);
    const glanceImage = async (id: string) =>
      (await (await fetch(`${env.glance.url}/v2/images/${id}`)).json()) as { checksum: string | null; os_hash_value: string | null; status: string };
    try {
      // The test bed's Glance (Debian 12) has image API 2.16: without snapstore's hashes the image has none.
      const auto = await withGlance.snapshot(source, { mode: 'copy', name: disk });
      expect(auto.checksums).toEqual({ checksum: md5, multihash: sha512, hashAlgo: 'sha512' });
      expect(await glanceImage(auto.imageId)).toMatchObject({ status: 'active', checksum: md5, os_hash_value: sha512 });

      const off = await withGlance.snapshot(source, { mode: 'copy', name: disk, checksums: 'off' });
      expect(off.checksums).toBeNull();
      expect(await glanceImage(off.imageId)).toMatchObject({ status: 'active', checksum: null, os_hash_value: null });
      expect(await exportMd5(a, `images/${off.imageId}@snap`)).toBe(md5);

      const inline = await noGlance.snapshot(source, { checksums: 'inline' });
      expect(inline.checksums).toEqual({ checksum: md5, multihash: sha512, hashAlgo: 'sha512' });
      await expect(noGlance.snapshot(source, { checksums: 'sometimes' as 'auto' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });

      await leftovers.expectUnchanged(nothing, [...producedBy(glanceEvents, env.glance.url), ...producedBy(plainEvents)]);
      for (const r of [auto, off]) await deleteGlanceImage(env.glance.url, r.imageId);
      await removeImage(b, `images/${inline.imageId}`);
      await leftovers.expectUnchanged(nothing);
    } finally {
      await withGlance.close();
      await noGlance.close();
    }
  });

  it('uploads through Glance when Glance refuses locations, and remembers it', async () => {
    const a = env.clusters.a;
    const glance = await startGlance(join(scratch, 'glance-noloc'), a.dir, { multipleLocations: false });
    const disk = uniqueName('coord-noloc');
    try {
      const source = await makeDisk(a, disk, 64, 8);
      const before = await exportMd5(a, `vms/${disk}`);
      const nothing = await leftovers.snapshot({ glance: [glance.url] });
      const events: CoordinatorEvent[] = [];
      const c = coordinator({ source: sourceConfig(a), target: rbdTarget(a), glance: { endpoint: glance.url } }, events);
      try {
        const result = await c.snapshot(source, { name: disk });
        expect(result.method).toBe('copy');
        expect(result.fallbackReason).toContain('Glance does not accept locations');
        expect(events.filter((e) => e.type === 'fallback')).toHaveLength(1);
        expect(result.glance).toEqual({ id: result.imageId, status: 'active' });
        // Glance's own rbd store wrote it: images/<id>@snap holds the disk's bytes.
        expect(await exportMd5(a, `images/${result.imageId}@snap`)).toBe(before);
        const plan = await c.check(source);
        expect(plan.reasons).toContainEqual(expect.objectContaining({ code: 'GLANCE_LOCATIONS', ok: false }));
        // The direct attempt's clone and Glance image were deleted; only the final one is left.
        expect(events.filter((e) => e.type === 'run')).toHaveLength(2);
        await leftovers.expectUnchanged(nothing, producedBy(events, glance.url));
        await deleteGlanceImage(glance.url, result.imageId);
        await leftovers.expectUnchanged(nothing);
      } finally {
        await c.close();
      }
    } finally {
      await stopGlance(join(scratch, 'glance-noloc'));
    }
  });
});
