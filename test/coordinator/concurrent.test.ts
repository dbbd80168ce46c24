// Sixteen snapshots of one disk at once through one coordinator: uuid-named source snapshots do not
// collide, every one succeeds with the disk's content, and nothing is left over.
import { describe, expect, it } from 'vitest';
import type { CoordinatorEvent } from '../../src/coordinator/index.js';
import { leftoversOf, producedBy } from '../support/leftovers.js';
import { ownTestbed } from '../support/own-bed.js';
import { uniqueName } from '../support/testbed.js';
import { coordinator, exportMd5, makeDisk, rbdTarget, removeImage, snaps, sourceConfig } from './helpers.js';

const env = ownTestbed();
const leftovers = leftoversOf(env);

describe.each(['a', 'b'] as const)('16 concurrent snapshots on cluster %s', (name) => {
  it('all succeed, all equal the disk, nothing left', async () => {
    const cluster = env.clusters[name];
    const disk = uniqueName('coord-16');
    const source = await makeDisk(cluster, disk, 64, 16);
    const content = await exportMd5(cluster, `vms/${disk}`);
    const before = await leftovers.snapshot();
    const events: CoordinatorEvent[] = [];
    const c = coordinator({ source: sourceConfig(cluster), target: rbdTarget(cluster) }, events);
    try {
      const results = await Promise.all(Array.from({ length: 16 }, () => c.snapshot(source)));
      expect(results.map((r) => r.method)).toEqual(Array(16).fill('direct'));
      const ids = results.map((r) => r.imageId);
      expect(new Set(ids).size).toBe(16);
      expect(events.filter((e) => e.type === 'fallback')).toEqual([]);
      // Every source snapshot had its own name.
      const taken = events.flatMap((e) => (e.type === 'step' && e.step === 'snap-create' && e.state === 'done' ? [e.runId] : []));
      expect(new Set(taken).size).toBe(16);
      // Exactly the 16 images, each with its protected `snap` and nothing else, and nothing more anywhere.
      expect(producedBy(events)).toHaveLength(16);
      await leftovers.expectUnchanged(before, producedBy(events));
      for (const id of ids) expect(await exportMd5(cluster, `images/${id}@snap`)).toBe(content);
      for (const id of ids) expect((await snaps(cluster, `images/${id}`)).map((s) => [s.name, s.protected])).toEqual([['snap', 'true']]);
      await Promise.all(ids.map((id) => removeImage(cluster, `images/${id}`)));
    } finally {
      await c.close();
    }
    expect(await exportMd5(cluster, `vms/${disk}`)).toBe(content);
  }, 120_000);
});
