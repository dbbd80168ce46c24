// Group snapshots (issue 15) on a real cluster, with a glance-api and pools of this file's own: several
// disks captured at one point in time by one Ceph group snapshot, each copied into an image of its own
// sharing the group's id; all or nothing at every fault point, and after kill -9 + gc; and the done-when
// test — three disks written in rounds by one process stay consistent with --group, and are shown not to be
// without it.
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import * as rbd from 'ceph-rbd-napi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CoordinatorEvent, GroupSnapshotResult, SnapshotCoordinatorOptions } from '../../src/coordinator/index.js';
import { GROUP_STEPS, withFaults, type FaultPoint, type StepName } from '../../src/coordinator/faults.js';
import { ownGlance } from '../glance/helpers.js';
import { adminOf, producedBy, type Expected } from '../support/leftovers.js';
import { uniqueName } from '../support/testbed.js';
import { coordinator } from './helpers.js';

// Short leases: a lease left behind on purpose runs out within the test.
const LEASE_SECONDS = 6;
process.env.SNAPSTORE_LEASE_SECONDS = String(LEASE_SECONDS);

const own = ownGlance('grp');
const cluster = () => own.cluster();
const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const MiB = 1024 * 1024;

function options(): SnapshotCoordinatorOptions {
  const c = cluster();
  const conf = own.pools.conf(c);
  return {
    source: { confPath: conf, user: own.pools.nova(c).user, pool: own.pools.vms, connectTimeoutMs: 10_000 },
    target: { kind: 'rbd', confPath: conf, user: own.pools.glance(c).user, pool: own.pools.images, chunkSizeMiB: 8, thinProvisioning: true, connectTimeoutMs: 10_000 },
    glance: { endpoint: own.info().url },
  };
}

async function io(pool: string): Promise<rbd.Ioctx> {
  return (await adminOf(cluster())).openIoctx(pool);
}

/** Disks in the own `vms` pool, each with 1 MiB of its own bytes; returns their sources. */
async function makeDisks(prefix: string, n: number): Promise<string[]> {
  const vms = await io(own.pools.vms);
  const out: string[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const name = uniqueName(`${prefix}${i}`);
      await vms.createImage(name, 8 * MiB, { features: ['layering', 'exclusive-lock', 'object-map', 'fast-diff', 'deep-flatten'] });
      const img = await vms.openImage(name);
      await img.write(2 * MiB, Buffer.alloc(MiB, i + 1));
      await img.close();
      out.push(`rbd://${cluster().fsid}/${own.pools.vms}/${name}`);
    }
  } finally {
    await vms.close();
  }
  return out;
}

/** What the own pools hold that a group run could leave and the probe does not list: groups, journal entries. */
async function groupsAndEntries(): Promise<{ groups: string[]; entries: string[] }> {
  const vms = await io(own.pools.vms);
  try {
    const entries = await rbd.omapListAll(vms, 'snapstore.journal').catch(() => new Map());
    return { groups: await rbd.groupList(vms), entries: [...entries.keys()] };
  } finally {
    await vms.close();
  }
}

async function expectNothingElse(): Promise<void> {
  expect(await groupsAndEntries()).toEqual({ groups: [], entries: [] });
}

/** The 8 bytes at `offset` of a store image's `snap`, read as admin. */
async function readTarget(imageId: string, offset = 0, length = 8): Promise<Buffer> {
  const images = await io(own.pools.images);
  try {
    const img = await images.openImage(imageId, { readOnly: true, snapshot: 'snap' });
    try {
      return await img.read(offset, length);
    } finally {
      await img.close();
    }
  } finally {
    await images.close();
  }
}

async function deleteResult(r: GroupSnapshotResult): Promise<void> {
  for (const i of r.images) await fetch(`${own.info().url}/v2/images/${i.imageId}`, { method: 'DELETE' });
}

async function deleteImages(ids: string[]): Promise<void> {
  for (const id of ids) await fetch(`${own.info().url}/v2/images/${id}`, { method: 'DELETE' });
}

describe('group snapshot', () => {
  it('captures the disks, each its own image with the shared group id; nothing else left; check --group says why copy', async () => {
    const sources = await makeDisks('grp-ok', 3);
    const before = await own.leftovers.snapshot();
    const events: CoordinatorEvent[] = [];
    const c = coordinator(options(), events);
    try {
      const plan = await c.checkGroup(sources);
      expect(plan.possible).toBe(true);
      expect(plan.disks.map((d) => d.method)).toEqual(['copy', 'copy', 'copy']);
      expect(plan.disks[0]!.reasons.map((r) => r.code)).toContain('GROUP_SNAP_CLONE');
      expect(plan.reasons.find((r) => r.code === 'GROUP')?.message).toContain('temporary group');

      const result = await c.snapshotGroup(sources, { name: 'grp' });
      expect(result.group.temporary).toBe(true);
      expect(result.images.map((i) => i.source)).toEqual(sources);
      for (const [n, img] of result.images.entries()) {
        expect(img).toMatchObject({ method: 'copy', flatten: 'done', glance: { status: 'active' } });
        expect((await readTarget(img.imageId, 2 * MiB, 4))[0]).toBe(n + 1);
        const g = (await (await fetch(`${own.info().url}/v2/images/${img.imageId}`)).json()) as Record<string, unknown>;
        expect(g.snapstore_group).toBe(result.groupId);
      }
      await own.leftovers.expectUnchanged(before, producedBy(events, own.info().url));
      await expectNothingElse();
      await deleteResult(result);
      await own.leftovers.expectUnchanged(before);
    } finally {
      await c.close();
    }
  });

  it('uses the group the disks are in as is, and refuses disks in different groups (GROUP_CONFLICT)', async () => {
    const sources = await makeDisks('grp-own', 2);
    const names = sources.map((s) => s.slice(s.lastIndexOf('/') + 1));
    const vms = await io(own.pools.vms);
    const G = uniqueName('grp-theirs');
    await rbd.groupCreate(vms, G);
    try {
      await rbd.groupImageAdd(vms, G, vms, names[0]!);
      const c = coordinator(options());
      try {
        await expect(c.snapshotGroup(sources)).rejects.toMatchObject({ code: 'GROUP_CONFLICT' });
        expect((await c.checkGroup(sources)).possible).toBe(false);
        await rbd.groupImageAdd(vms, G, vms, names[1]!);
        const result = await c.snapshotGroup(sources);
        expect(result.group).toEqual({ pool: own.pools.vms, name: G, temporary: false });
        // The group stays, with its images and without the run's group snapshot.
        expect((await rbd.groupImageList(vms, G)).map((i) => i.name).sort()).toEqual([...names].sort());
        expect(await rbd.groupSnapList(vms, G)).toEqual([]);
        await deleteResult(result);
      } finally {
        await c.close();
      }
    } finally {
      await rbd.groupRemove(vms, G);
      await vms.close();
    }
    await expectNothingElse();
  });
});

/** A failure thrown at the `nth` time `step` is reached `when`. */
function failAt(step: StepName, when: FaultPoint['when'], nth = 1): (p: FaultPoint) => void {
  let seen = 0;
  return (p) => {
    if (p.step !== step || p.when !== when) return;
    if (++seen === nth) throw Object.assign(new Error(`injected EIO at ${step}`), { code: 'RBD_ERROR', errno: 5, call: 'injected' });
  };
}

describe('all or nothing: a failure at each step', () => {
  let sources: string[] = [];
  let fault: (p: FaultPoint) => void = () => {};
  let c: ReturnType<typeof coordinator>;
  let events: CoordinatorEvent[] = [];
  beforeAll(async () => {
    sources = await makeDisks('grp-fault', 2);
    c = coordinator(withFaults({ ...options(), logger: (e: CoordinatorEvent) => events.push(e) }, (p) => fault(p)));
  });
  afterAll(() => c?.close());

  const before: Array<[StepName, FaultPoint['when'], number]> = [
    ...GROUP_STEPS.filter((s) => s !== 'group-unrecord').map((s) => [s, 'before', 1] as [StepName, FaultPoint['when'], number]),
    ['group-snap', 'after', 1],
    ['group-commit', 'after', 1],
    // The second disk's steps: the first disk is complete (copied, registered) and must go too.
    ...(['record', 'glance-create', 'copy', 'glance-add-location'] as StepName[]).map((s) => [s, 'before', 2] as [StepName, FaultPoint['when'], number]),
    ['copy', 'progress', 2],
  ];
  it.each(before)('%s (%s, occurrence %i): SNAPSHOT_FAILED, every image removed, the disks as they were', async (step, when, nth) => {
    const snap = await own.leftovers.snapshot();
    fault = failAt(step, when, nth);
    events = [];
    const err = await c.snapshotGroup(sources).then(
      () => null,
      (e: unknown) => e as { code?: string; context?: Record<string, unknown> },
    );
    expect(err).toMatchObject({ code: 'SNAPSHOT_FAILED', context: expect.objectContaining({ step }) });
    await own.leftovers.expectUnchanged(snap);
    await expectNothingElse();
  });

  it.each([
    ['unmark-target', 2],
    ['unrecord', 1],
    ['group-unrecord', 1],
  ] as Array<[StepName, number]>)('%s fails after the commit: the group stands, and gc finishes it', async (step, nth) => {
    const snap = await own.leftovers.snapshot();
    fault = failAt(step, 'before', nth);
    events = [];
    const result = await c.snapshotGroup(sources);
    fault = () => {};
    // The lease left behind runs out (group-unrecord) or was abandoned (a disk left unfinished).
    await new Promise((r) => setTimeout(r, (LEASE_SECONDS + LEASE_SECONDS / 2 + 1) * 1000));
    await c.gc({ olderThanMs: 0 });
    await own.leftovers.expectUnchanged(snap, producedBy(events, own.info().url));
    await expectNothingElse();
    await deleteResult(result);
  });
});

describe('kill -9, then gc', () => {
  // The global setup has checked that dist/ is built from the current src/.
  const modulePath = join(root, 'dist', 'coordinator', 'index.js');

  function start(
    sources: string[],
    freezeAt: { step: string; state: 'start' | 'done'; nth: number },
    when: (e: CoordinatorEvent, seen: CoordinatorEvent[]) => boolean,
  ): { child: ChildProcess; reached: Promise<CoordinatorEvent[]> } {
    const child = spawn(process.execPath, [join(here, 'fixtures', 'group-child.mjs'), modulePath, JSON.stringify({ options: options(), sources, snapshot: {}, freezeAt })], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env },
    });
    const seen: CoordinatorEvent[] = [];
    const reached = new Promise<CoordinatorEvent[]>((resolveReached, reject) => {
      createInterface({ input: child.stdout! }).on('line', (line) => {
        const e = JSON.parse(line) as CoordinatorEvent | { type: 'finished' };
        if (e.type === 'finished') return reject(new Error('the child finished before the kill point'));
        seen.push(e);
        if (when(e, seen)) {
          child.kill('SIGKILL');
          resolveReached(seen);
        }
      });
      child.on('exit', (code, signal) => {
        if (signal !== 'SIGKILL') reject(new Error(`child exited (${code ?? signal}) before the kill point`));
      });
    });
    return { child, reached };
  }

  it.each([
    ['the second disk copying (before the commit): nothing left', false],
    ['the commit done (the disks not finished yet): gc finishes every image', true],
  ] as const)('%s', async (_, committed) => {
    const sources = await makeDisks('grp-kill', 2);
    const snap = await own.leftovers.snapshot();
    const copies = (seen: CoordinatorEvent[]) => seen.filter((x) => x.type === 'step' && x.step === 'copy' && x.state === 'start').length;
    // The child freezes at the kill point itself: a loaded machine delivering the kill late must not let it run on.
    const freezeAt = committed ? { step: 'group-commit', state: 'done' as const, nth: 1 } : { step: 'copy', state: 'start' as const, nth: 2 };
    const { child, reached } = start(sources, freezeAt, (e, seen) =>
      committed ? e.type === 'step' && e.step === 'group-commit' && e.state === 'done' : copies(seen) === 2,
    );
    const seen = await reached;
    await new Promise((r) => child.on('exit', r));
    const c = coordinator(options());
    try {
      await c.gc({ olderThanMs: 0 });
    } finally {
      await c.close();
    }
    const ids = seen.flatMap((e) => (e.type === 'run' && e.path === 'copy' ? [e.imageId] : []));
    const expected: Expected[] = committed
      ? ids.flatMap((id) => [
          { rbd: { fsid: cluster().fsid, pool: own.pools.images, image: id }, snapshots: ['user:snap'], meta: [] },
          { glance: { url: own.info().url, id, status: 'active' } },
        ])
      : [];
    await own.leftovers.expectUnchanged(snap, expected);
    await expectNothingElse();
    await deleteImages(ids);
  }, 240_000);
});

describe('done when: three disks written in rounds (a, b, c) by one process', () => {
  it('with --group every triple is consistent; one disk after the other it is not', async () => {
    const sources = await makeDisks('grp-rounds', 3);
    const names = sources.map((s) => s.slice(s.lastIndexOf('/') + 1));
    const c = cluster();
    const writer = spawn(process.execPath, [join(here, 'fixtures', 'round-writer.mjs'), JSON.stringify({ conf: c.conf, user: 'admin', pool: own.pools.vms, images: names })], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let rounds = 0;
    createInterface({ input: writer.stdout! }).on('line', (l) => {
      rounds = Number(l.split(' ')[1]);
    });
    const coord = coordinator(options());
    const roundOf = async (imageId: string) => Number((await readTarget(imageId)).readBigUInt64BE(0));
    const made: string[] = [];
    try {
      while (rounds < 100) await new Promise((r) => setTimeout(r, 100));
      const triples: number[][] = [];
      for (let i = 0; i < 3; i++) {
        const g = await coord.snapshotGroup(sources);
        made.push(...g.images.map((x) => x.imageId));
        triples.push(await Promise.all(g.images.map((x) => roundOf(x.imageId))));
      }
      // One point in time: a >= b >= c >= a - 1, and the writer was going on (rounds seen > 0).
      for (const [a, b, cc] of triples as Array<[number, number, number]>) {
        expect(a).toBeGreaterThan(0);
        expect(a).toBeGreaterThanOrEqual(b);
        expect(b).toBeGreaterThanOrEqual(cc);
        expect(cc).toBeGreaterThanOrEqual(a - 1);
      }
      // Without --group: one disk after the other, c is taken rounds after a and shows later rounds.
      const single: number[] = [];
      for (const s of sources) {
        const r = await coord.snapshot(s);
        made.push(r.imageId);
        single.push(await roundOf(r.imageId));
      }
      const [a, , cc] = single as [number, number, number];
      expect(cc).toBeGreaterThan(a);
    } finally {
      writer.kill('SIGTERM');
      await new Promise((r) => writer.on('exit', r));
      await coord.close();
      await deleteImages(made);
    }
    await expectNothingElse();
  }, 240_000);
});
