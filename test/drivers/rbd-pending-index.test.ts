// RbdStore's index of pending images (src/drivers/rbd/pending-index.ts), checked with the rbd and rados
// CLIs as an operator would: listPending opens only the images the index names (a mark written by a
// version before the index is found by the full scan, which indexes it), stale entries are dropped, an
// `add` killed between librbd's create and its metadata write still leaves an image gc finds, and an add
// whose cleanup fails says so and leaves a marked image.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { beforeEach, describe, expect, it } from 'vitest';
import { CephCluster, loadNative } from '../../src/ceph/index.js';
import { RbdStore } from '../../src/drivers/rbd/index.js';
import { codeOf, SnapstoreError } from '../../src/errors.js';
import type { Snapshot } from '../support/leftovers.js';
import { ownPools } from '../support/own-pools.js';
import { ceph, rbd, testbed, uniqueName } from '../support/testbed.js';

const run = promisify(execFile);
const env = testbed();
const { a } = env.clusters;
/** The driver's index object: named here only to look at it with the rados CLI. */
const INDEX = 'snapstore_pending';

const pools = ownPools('drv-pidx', { clusters: () => [testbed().clusters.a] });
let before: Snapshot;
beforeEach(async () => {
  before = await pools.leftovers.snapshot();
});

function store(cluster?: CephCluster): RbdStore {
  return new RbdStore({ confPath: a.conf, ...pools.glance(a), pool: pools.images, ...(cluster ? { cluster } : {}) });
}

async function rados(args: string[]): Promise<string> {
  return (await run('rados', ['-c', a.conf, '--id', 'admin', '-p', pools.images, ...args])).stdout;
}

async function indexKeys(): Promise<string[]> {
  return (await rados(['listomapkeys', INDEX]).catch(() => '')).split('\n').filter(Boolean);
}

describe('RbdStore pending index', () => {
  it('lists only what the index names; the full scan finds a mark of an older version and indexes it', async () => {
    const s = store();
    const id = uniqueName('old');
    try {
      await rbd(a, ['create', '--size', '4M', `${pools.images}/${id}`]);
      // What a version before the index left: the metadata mark only.
      await rbd(a, ['image-meta', 'set', `${pools.images}/${id}`, 'snapstore.pending', 'run old']);
      expect((await s.listPending()).map((e) => e.imageId)).not.toContain(id);
      expect((await s.listPending({ scanAll: true })).filter((e) => e.imageId === id).map((e) => e.marker)).toEqual(['run old']);
      expect(await indexKeys()).toContain(id);
      expect((await s.listPending()).map((e) => e.imageId)).toContain(id);
      expect(await s.discard(id)).toBe(true);
      expect(await indexKeys()).not.toContain(id);
    } finally {
      await s.close();
    }
    await pools.leftovers.expectUnchanged(before);
  });

  it('drops an entry whose image lost its mark or is gone, after checking that image', async () => {
    const s = store();
    const [unmarked, gone] = [uniqueName('unmarked'), uniqueName('gone')];
    try {
      for (const id of [unmarked, gone]) {
        await rbd(a, ['create', '--size', '4M', `${pools.images}/${id}`]);
        await s.markPending(id, `run ${id}`);
      }
      expect(await indexKeys()).toEqual(expect.arrayContaining([unmarked, gone]));
      await rbd(a, ['image-meta', 'remove', `${pools.images}/${unmarked}`, 'snapstore.pending']);
      await rbd(a, ['rm', '--no-progress', `${pools.images}/${gone}`]);
      expect((await s.listPending()).map((e) => e.imageId)).not.toEqual(expect.arrayContaining([unmarked]));
      const keys = await indexKeys();
      expect(keys).not.toContain(unmarked);
      expect(keys).not.toContain(gone);
      await rbd(a, ['rm', '--no-progress', `${pools.images}/${unmarked}`]);
    } finally {
      await s.close();
    }
    await pools.leftovers.expectUnchanged(before);
  });

  it('an add killed between creating the image and marking it leaves an image listed with its mark; a finished one is never claimed', async () => {
    const s = store();
    const [half, done] = [uniqueName('half'), uniqueName('done')];
    try {
      // The state a kill there leaves: add's `creating` entry, and the bare image librbd made.
      for (const id of [half, done]) {
        await rados(['setomapval', INDEX, id, JSON.stringify({ v: 1, token: 't', creating: `run ${id}` })]);
        await rbd(a, ['create', '--size', '4M', `${pools.images}/${id}`]);
      }
      await rbd(a, ['snap', 'create', `${pools.images}/${done}@snap`]);
      expect(await s.readPending(half)).toBe(`run ${half}`);
      expect(await s.readPending(done)).toBeNull();
      const listed = await s.listPending();
      expect(listed.filter((e) => e.imageId === half).map((e) => e.marker)).toEqual([`run ${half}`]);
      expect(listed.map((e) => e.imageId)).not.toContain(done);
      expect(await s.discard(half)).toBe(true);
      expect(await indexKeys()).not.toContain(half);
      expect(await indexKeys()).not.toContain(done);
      await rbd(a, ['snap', 'rm', `${pools.images}/${done}@snap`]);
      await rbd(a, ['rm', '--no-progress', `${pools.images}/${done}`]);
    } finally {
      await s.close();
    }
    await pools.leftovers.expectUnchanged(before);
  });

  it('an add killed before librbd created the image leaves only its entry: reading the mark (what gc asks of a dead run) drops it', async () => {
    const s = store();
    const never = uniqueName('never');
    try {
      await rados(['setomapval', INDEX, never, JSON.stringify({ v: 1, token: 't', creating: `run ${never}` })]);
      expect(await indexKeys()).toContain(never);
      expect(await s.readPending(never)).toBeNull();
      expect(await indexKeys()).not.toContain(never);
    } finally {
      await s.close();
    }
    await pools.leftovers.expectUnchanged(before);
  });

  it('an add whose cleanup fails says so, and leaves a marked image that listPending finds', async () => {
    const id = uniqueName('cut');
    const session = await CephCluster.connect({ confPath: a.conf, ...pools.glance(a) });
    const address = await (await loadNative()).clientAddress(session.native);
    const writer = store(session);
    let release: () => void = () => {};
    const cut = new Promise<void>((resolve) => {
      release = resolve;
    });
    async function* source() {
      yield Buffer.alloc(4 * 1024 * 1024, 1);
      await cut;
      yield Buffer.alloc(4 * 1024 * 1024, 2);
    }
    const adding = writer.add(id, source(), 8 * 1024 * 1024, { pending: 'run cut' }).then(
      () => null,
      (err: unknown) => err,
    );
    const other = store();
    try {
      await expect.poll(async () => (await other.readPending(id)) ?? '', { timeout: 30_000 }).toBe('run cut');
      // Cut the writer off: its writes and its cleanup both fail, as in an outage of its network.
      await ceph(a, ['osd', 'blocklist', 'add', address, '600']);
      release();
      const err = await adding;
      expect(err).toBeInstanceOf(SnapstoreError);
      const context = (err as SnapstoreError).context;
      expect(codeOf(err)).toBeDefined();
      expect(context.cleanupFailed).toEqual(expect.any(String));
      expect(context.imageLeft).toContain('marked pending');
      expect((await other.listPending()).filter((e) => e.imageId === id).map((e) => e.marker)).toEqual(['run cut']);
      expect(await other.discard(id)).toBe(true);
    } finally {
      await ceph(a, ['osd', 'blocklist', 'rm', address]).catch(() => '');
      await other.close();
      await writer.close();
      await session.close().catch(() => {});
    }
    await pools.leftovers.expectUnchanged(before);
  });
});
