// A store the coordinator and gc were never told about: MemoryStore, written only in a test
// (test/support/memory-store.ts), handed to the SnapshotCoordinator as its target. A copy-path snapshot of a
// file goes into it and gc finds (and removes) what a dead run left pending in it — through the Store
// contract alone, with nothing in src/coordinator/ knowing this store.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SnapshotCoordinator, type CoordinatorEvent } from '../../src/coordinator/index.js';
import { encodeMark, pendingMarker } from '../../src/coordinator/names.js';
import { MemoryStore } from '../support/memory-store.js';

const scratch = mkdtempSync(join(tmpdir(), 'coord-memory-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

async function readAll(store: MemoryStore, location: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of await store.get(location)) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

describe('a store only a test knows (MemoryStore)', () => {
  it('takes a copy-path snapshot of a file: the bytes, its location, no pending mark left', async () => {
    const store = new MemoryStore();
    const path = join(scratch, 'disk.raw');
    // Not a multiple of any chunk size, so a lost or doubled tail would show.
    const data = randomBytes(3 * 1024 * 1024 + 4321);
    writeFileSync(path, data);
    const events: CoordinatorEvent[] = [];
    const coordinator = new SnapshotCoordinator({ target: store, logger: (e) => events.push(e) });
    try {
      const plan = await coordinator.check(`file://${path}`);
      expect(plan.method).toBe('copy');
      expect(plan.reasons).toContainEqual(expect.objectContaining({ code: 'TARGET_KIND', ok: false }));

      const result = await coordinator.snapshot(`file://${path}`, { checksums: 'inline' });
      expect(result).toMatchObject({ method: 'copy', location: `memory://${result.imageId}`, sizeBytes: data.length, flatten: 'done' });
      expect(result.checksums?.multihash).toMatch(/^[0-9a-f]{128}$/);
      expect((await readAll(store, result.location)).equals(data)).toBe(true);
      expect(await store.readPending(result.imageId)).toBeNull();
      expect(await store.listPending()).toEqual([]);
      expect(store.names()).toEqual([result.imageId]);
      // The store's mark was on while the copy ran: the run went through the steps that set and clear it.
      const steps = events.flatMap((e) => (e.type === 'step' && e.state === 'done' ? [e.step] : []));
      expect(steps).toEqual(['copy', 'unmark-target']);
    } finally {
      await coordinator.close();
    }
    // The store was the caller's: the coordinator left it open.
    expect(await store.exists(store.names()[0] ?? '')).toBe(true);
  });

  it('refuses an image id the store already holds, and leaves that image alone', async () => {
    const store = new MemoryStore();
    const path = join(scratch, 'small.raw');
    writeFileSync(path, randomBytes(4096));
    const imageId = randomUUID();
    await store.add(imageId, [Buffer.from('theirs')]);
    const coordinator = new SnapshotCoordinator({ target: store });
    try {
      await expect(coordinator.snapshot(`file://${path}`, { imageId })).rejects.toMatchObject({ code: 'TARGET_EXISTS' });
    } finally {
      await coordinator.close();
    }
    expect((await readAll(store, `memory://${imageId}`)).toString()).toBe('theirs');
  });

  it('gc finds a dead run’s pending image in it and removes it, and keeps a live run’s', async () => {
    const store = new MemoryStore();
    const dead = randomUUID();
    const live = randomUUID();
    const deadMark = {
      ...pendingMarker(randomUUID(), 'copy', `file://${join(scratch, 'gone.raw')}`, null),
      startedAt: new Date(Date.now() - 3_600_000).toISOString(),
      owner: { host: 'elsewhere', pid: 1, pidStart: null, bootId: null },
    };
    await store.add(dead, [Buffer.alloc(1024)], 1024, { pending: encodeMark(deadMark) });
    // This process is alive: its run is never touched, however old.
    const liveMark = { ...pendingMarker(randomUUID(), 'copy', 'file:///x', null), startedAt: deadMark.startedAt };
    await store.add(live, [Buffer.alloc(1024)], 1024, { pending: encodeMark(liveMark) });
    // A mark snapstore did not write is not snapstore's to remove.
    const foreign = randomUUID();
    await store.add(foreign, [Buffer.alloc(1024)], 1024, { pending: 'someone else' });

    const coordinator = new SnapshotCoordinator({ target: store });
    try {
      const dry = await coordinator.gc({ olderThanMs: 60_000, dryRun: true });
      expect(dry.found).toEqual([expect.objectContaining({ kind: 'target', location: `memory://${dead}`, runId: deadMark.runId, owner: 'elsewhere:1' })]);
      expect(dry.removed).toEqual([]);
      expect(store.names().sort()).toEqual([dead, live, foreign].sort());

      const report = await coordinator.gc({ olderThanMs: 60_000 });
      expect(report.removed.map((l) => l.location)).toEqual([`memory://${dead}`]);
      expect(store.names().sort()).toEqual([live, foreign].sort());
    } finally {
      await coordinator.close();
    }
  });
});
