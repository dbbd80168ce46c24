// The direct path on real clusters: clone format 2 (cluster a) and 1 (cluster b), with and without Glance,
// and on a cluster with Ceph's default image features.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startCluster, stopCluster } from '../../scripts/testbed.mjs';
import { leftoversOf, producedBy } from '../support/leftovers.js';
import { ownTestbed } from '../support/own-bed.js';
import { rbd, uniqueName } from '../support/testbed.js';
import {
  coordinator,
  deleteGlanceImage,
  exportMd5,
  glanceStatus,
  imageInfo,
  makeDisk,
  rbdTarget,
  removeImage,
  snaps,
  sourceConfig,
} from './helpers.js';
import type { CoordinatorEvent } from '../../src/coordinator/index.js';

const env = ownTestbed({ glance: true });
const leftovers = leftoversOf(env);
/** The own test bed's clone formats (read at collection time, before it starts). */
const CLONE_FORMAT = { a: 2, b: 1 } as const;

describe('direct path', () => {
  for (const name of ['a', 'b'] as const) {
    it(`clones, flattens and snaps on cluster ${name} (clone format ${CLONE_FORMAT[name]})`, async () => {
      const cluster = env.clusters[name];
      expect(cluster.cloneFormat).toBe(CLONE_FORMAT[name]);
      const disk = uniqueName('coord-direct');
      const source = await makeDisk(cluster, disk, 128, 24);
      const before = await exportMd5(cluster, `vms/${disk}`);
      const nothing = await leftovers.snapshot();
      const events: CoordinatorEvent[] = [];
      const c = coordinator({ source: sourceConfig(cluster), target: rbdTarget(cluster) }, events);
      try {
        const plan = await c.check(source);
        expect(plan.method).toBe('direct');
        expect(plan.reasons.find((r) => r.code === 'CLONE_FORMAT')?.message).toContain(`format ${cluster.cloneFormat}`);
        const progress: Array<{ phase: string; done: number; total: number }> = [];
        const result = await c.snapshot(source, { onProgress: (p) => progress.push(p) });
        expect(result).toMatchObject({ method: 'direct', fallbackReason: null, sizeBytes: 128 * 1024 * 1024, glance: null });
        expect(result.location).toBe(`rbd://${cluster.fsid}/images/${result.imageId}/snap`);
        const info = await imageInfo(cluster, `images/${result.imageId}`);
        expect(info.parent).toBeUndefined();
        expect(await snaps(cluster, `images/${result.imageId}`)).toEqual([expect.objectContaining({ name: 'snap', protected: 'true' })]);
        expect(await exportMd5(cluster, `images/${result.imageId}@snap`)).toBe(before);
        expect(await exportMd5(cluster, `vms/${disk}`)).toBe(before);
        // The flatten was reported, and reached the whole disk: progress ends at done = total = the disk's size.
        const flatten = progress.filter((p) => p.phase === 'flatten');
        expect(flatten.at(-1)).toEqual({ phase: 'flatten', done: flatten.at(-1)!.total, total: flatten.at(-1)!.total });
        await leftovers.expectUnchanged(nothing, producedBy(events));
        await removeImage(cluster, `images/${result.imageId}`);
      } finally {
        await c.close();
      }
    });
  }

  it("works with Ceph's default image features (exclusive-lock, object-map, fast-diff): direct and copy", async () => {
    // The test bed's clusters default to layering,deep-flatten; deployments (and the benchmarks) run Ceph's own default.
    const dir = mkdtempSync(join(tmpdir(), 'coord-stock-'));
    const stock = await startCluster(join(dir, 'c'), { cloneV2: true, stockFeatures: true });
    try {
      const disk = uniqueName('coord-stock');
      const source = await makeDisk(stock, disk, 96, 24);
      expect((await imageInfo(stock, `vms/${disk}`)).features).toEqual(expect.arrayContaining(['exclusive-lock', 'object-map', 'fast-diff']));
      const before = await exportMd5(stock, `vms/${disk}`);
      const nothing = await leftovers.snapshot({ clusters: [stock] });
      const events: CoordinatorEvent[] = [];
      const direct = coordinator({ source: sourceConfig(stock), target: rbdTarget(stock) }, events);
      const copy = coordinator({ source: sourceConfig(stock), target: rbdTarget(env.clusters.b) }, events);
      try {
        const d = await direct.snapshot(source);
        expect(d.method).toBe('direct');
        const info = await imageInfo(stock, `images/${d.imageId}`);
        expect(info.parent).toBeUndefined();
        expect(info.features).toEqual(expect.arrayContaining(['object-map', 'fast-diff']));
        expect(await exportMd5(stock, `images/${d.imageId}@snap`)).toBe(before);
        const c = await copy.snapshot(source);
        expect(c.method).toBe('copy');
        expect(await exportMd5(env.clusters.b, `images/${c.imageId}@snap`)).toBe(before);
        await leftovers.expectUnchanged(nothing, producedBy(events));
        await removeImage(stock, `images/${d.imageId}`);
        await removeImage(env.clusters.b, `images/${c.imageId}`);
      } finally {
        await direct.close();
        await copy.close();
      }
    } finally {
      await stopCluster(join(dir, 'c'));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('registers the location in Glance', async () => {
    const cluster = env.clusters.a;
    const disk = uniqueName('coord-glance');
    const source = await makeDisk(cluster, disk, 128, 8);
    const nothing = await leftovers.snapshot();
    const events: CoordinatorEvent[] = [];
    const c = coordinator({ source: sourceConfig(cluster), target: rbdTarget(cluster), glance: { endpoint: env.glance.url } }, events);
    try {
      const result = await c.snapshot(source, { name: disk });
      expect(result.method).toBe('direct');
      expect(result.glance).toEqual({ id: result.imageId, status: 'active' });
      expect(await glanceStatus(env.glance.url, result.imageId)).toBe('active');
      await leftovers.expectUnchanged(nothing, producedBy(events, env.glance.url));
      // Deleting the Glance image deletes the RBD image through Glance's own rbd store: nothing of the run is left.
      await deleteGlanceImage(env.glance.url, result.imageId);
      await leftovers.expectUnchanged(nothing);
    } finally {
      await c.close();
    }
  });

  it('clones an existing snapshot without touching it: protected on clone format 1, as is on format 2', async () => {
    for (const name of ['a', 'b'] as const) {
      const cluster = env.clusters[name];
      const disk = uniqueName('coord-theirs');
      await makeDisk(cluster, disk, 32, 4);
      await rbd(cluster, ['snap', 'create', `vms/${disk}@theirs`], 'nova');
      const source = `rbd://${cluster.fsid}/vms/${disk}/theirs`;
      const content = await exportMd5(cluster, `vms/${disk}@theirs`);
      const events: CoordinatorEvent[] = [];
      const c = coordinator({ source: sourceConfig(cluster), target: rbdTarget(cluster) }, events);
      try {
        if (cluster.cloneFormat === 1) {
          const plan = await c.check(source);
          expect(plan.method).toBe('copy');
          expect(plan.reasons).toContainEqual(expect.objectContaining({ code: 'SNAPSHOT_PROTECTED', ok: false, fix: `rbd snap protect vms/${disk}@theirs` }));
          await rbd(cluster, ['snap', 'protect', `vms/${disk}@theirs`], 'nova');
        }
        const nothing = await leftovers.snapshot();
        const result = await c.snapshot(source, { mode: 'direct' });
        expect(await exportMd5(cluster, `images/${result.imageId}@snap`)).toBe(content);
        expect((await imageInfo(cluster, `images/${result.imageId}`)).parent).toBeUndefined();
        const left = await snaps(cluster, `vms/${disk}`);
        expect(left.map((s) => [s.name, s.protected])).toEqual([['theirs', cluster.cloneFormat === 1 ? 'true' : 'false']]);
        await leftovers.expectUnchanged(nothing, producedBy(events));
        await removeImage(cluster, `images/${result.imageId}`);
        if (cluster.cloneFormat === 1) await rbd(cluster, ['snap', 'unprotect', `vms/${disk}@theirs`], 'nova');
        await rbd(cluster, ['snap', 'rm', `vms/${disk}@theirs`], 'nova');
      } finally {
        await c.close();
      }
    }
  });
});
