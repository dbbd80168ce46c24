// The fault matrix: a failure at every step of both paths (injected where the coordinator calls Ceph,
// the store or Glance, before and after the call), and by real means (Glance stopped, a cancelled
// signal). Every case must end with nothing left — no snapshot on the disk, no image, nothing in any trash,
// no run record, no Glance image — and with the right fallback or typed error.
import { join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { PermissionError, InvalidArgumentError } from 'ceph-rbd-napi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocationsNotAllowed } from '../../src/glance/errors.js';
import type { CoordinatorEvent, SnapshotCoordinatorOptions } from '../../src/coordinator/index.js';
import { COPY_STEPS, DIRECT_STEPS, withFaults, type FaultPoint, type StepName } from '../../src/coordinator/faults.js';
import { freePort, startGlance, stopGlance } from '../../scripts/testbed.mjs';
import { leftoversOf, producedBy } from '../support/leftovers.js';
import { ownTestbed } from '../support/own-bed.js';
import { rbd, rbdJson, uniqueName } from '../support/testbed.js';
import {
  coordinator,
  deleteGlanceImage,
  exportMd5,
  glanceStatus,
  makeDisk,
  rbdTarget,
  removeImage,
  sourceConfig,
} from './helpers.js';

const env = ownTestbed({ glance: true });
const leftovers = leftoversOf(env);
/** The own test bed's clone formats (needed at collection time, before it starts). */
const CLONE_FORMAT = { a: 2, b: 1 } as const;

/** An I/O error as ceph-rbd-napi reports one (no closer class: copying would not help). */
function ioError(step: string): Error {
  return Object.assign(new Error(`injected EIO at ${step}`), { code: 'RBD_ERROR', errno: 5, call: 'injected' });
}

/**
 * A coordinator whose fault injector can be swapped between cases, so the cases share its connections and
 * what it learned once (the clone format) — as a long-running service would.
 */
function faultyCoordinator(options: SnapshotCoordinatorOptions) {
  let fault: (p: FaultPoint) => void = () => {};
  let events: CoordinatorEvent[] = [];
  const coord = coordinator(withFaults({ ...options, logger: (e: CoordinatorEvent) => events.push(e) }, (p) => fault(p)));
  return {
    close: () => coord.close(),
    /** Runs one snapshot with `f` injected; returns the error (or result) and the image ids it tried. */
    async run(source: string, f: (p: FaultPoint) => void, opts: { mode?: 'auto' | 'copy'; name: string }) {
      fault = f;
      events = [];
      const outcome = await coord.snapshot(source, { mode: opts.mode ?? 'auto', name: opts.name }).then(
        (result) => ({ result, error: null }),
        (error: unknown) => ({ result: null, error: error as Error & { code?: string; context?: Record<string, unknown> } }),
      );
      const ids = events.flatMap((e) => (e.type === 'run' ? [e.imageId] : []));
      return { ...outcome, ids, events };
    },
  };
}

async function runOnce(options: SnapshotCoordinatorOptions, source: string, f: (p: FaultPoint) => void, name: string) {
  const c = faultyCoordinator(options);
  try {
    return await c.run(source, f, { name });
  } finally {
    await c.close();
  }
}

function failAt(step: StepName, when: FaultPoint['when'], error: (step: string) => Error = ioError) {
  let fired = false;
  return (p: FaultPoint) => {
    if (fired || p.step !== step || p.when !== when) return;
    fired = true;
    throw error(step);
  };
}

describe.each([
  ['a', true],
  ['b', false],
] as const)('direct path on cluster %s: a failure at each step', (clusterName, withGlance) => {
  const cluster = () => env.clusters[clusterName];
  const disk = uniqueName(`coord-fault-${clusterName}`);
  let source = '';
  let content = '';
  const options = (): SnapshotCoordinatorOptions => ({
    source: sourceConfig(cluster()),
    target: rbdTarget(cluster()),
    ...(withGlance ? { glance: { endpoint: env.glance.url } } : {}),
  });
  let shared: ReturnType<typeof faultyCoordinator>;

  beforeAll(async () => {
    expect(cluster().cloneFormat).toBe(CLONE_FORMAT[clusterName]);
    source = await makeDisk(cluster(), disk, 32, 8);
    content = await exportMd5(cluster(), `vms/${disk}`);
    shared = faultyCoordinator(options());
  });
  afterAll(async () => {
    await shared.close();
    expect(await exportMd5(cluster(), `vms/${disk}`)).toBe(content);
  });

  const steps: StepName[] = DIRECT_STEPS.filter((s) => {
    // chain-depth: linked snapshots only (test/coordinator/linked.test.ts).
    if (s === 'unrecord' || s === 'chain-depth') return false;
    if (!withGlance && s.startsWith('glance-')) return false;
    if (CLONE_FORMAT[clusterName] === 2 && (s === 'snap-protect' || s === 'snap-unprotect')) return false;
    return true;
  });
  const cases: Array<[StepName, FaultPoint['when']]> = [
    ...steps.map((s) => [s, 'before'] as [StepName, FaultPoint['when']]),
    ...(['snap-create', 'clone', 'glance-create', 'finalize'] as StepName[])
      .filter((s) => steps.includes(s))
      .map((s) => [s, 'after'] as [StepName, FaultPoint['when']]),
    ['flatten', 'progress'],
  ];

  it.each(cases)('%s (%s): SNAPSHOT_FAILED and nothing left', async (step, when) => {
    const name = uniqueName('coord-fault-img');
    const nothing = await leftovers.snapshot();
    const out = await shared.run(source, failAt(step, when), { name });
    expect(out.result).toBeNull();
    expect(out.error).toMatchObject({ code: 'SNAPSHOT_FAILED', context: expect.objectContaining({ step, method: 'direct' }) });
    expect(out.ids).toHaveLength(1);
    await leftovers.expectUnchanged(nothing);
  });

  it.each([
    ['clone', (s: string) => new PermissionError(`injected EPERM at ${s}`, { errno: 1, call: 'rbd_clone3' }), 'may not write the target pool'],
    ['flatten', (s: string) => new PermissionError(`injected EPERM at ${s}`, { errno: 1, call: 'rbd_flatten_with_progress' }), 'may not write the target pool'],
    ['clone', (s: string) => new InvalidArgumentError(`injected EINVAL at ${s}`, { errno: 22, call: 'rbd_clone3' }), 'librbd refused the clone'],
    ...(withGlance
      ? [['glance-add-location', () => new LocationsNotAllowed({ method: 'PATCH', path: '/v2/images/x', status: 403 }), 'Glance does not accept locations'] as const]
      : []),
  ] as const)('%s refused (%#): falls back to copy, nothing of the first attempt left', async (step, error, reason) => {
    const name = uniqueName('coord-fallback-img');
    const nothing = await leftovers.snapshot();
    // A coordinator of its own: one that saw Glance refuse locations stops trying.
    const out = await runOnce(options(), source, failAt(step as StepName, 'before', error), name);
    expect(out.error).toBeNull();
    expect(out.result).toMatchObject({ method: 'copy' });
    expect(out.result!.fallbackReason).toContain(reason);
    expect(out.events.filter((e) => e.type === 'fallback')).toHaveLength(1);
    expect(out.ids).toHaveLength(2);
    const [first, final] = out.ids as [string, string];
    expect(out.result!.imageId).toBe(final);
    expect(first).not.toBe(final);
    expect(await exportMd5(cluster(), `images/${final}@snap`)).toBe(content);
    // The final image (and its Glance image) only: nothing of the first attempt.
    await leftovers.expectUnchanged(nothing, producedBy(out.events, env.glance.url));
    if (withGlance) await deleteGlanceImage(env.glance.url, final);
    else await removeImage(cluster(), `images/${final}`);
    await leftovers.expectUnchanged(nothing);
  });
});

describe('the run record cannot be removed at the end', () => {
  it('the snapshot still succeeds; gc later removes the record and leaves the image alone', async () => {
    const a = env.clusters.a;
    const disk = uniqueName('coord-unrecord');
    const source = await makeDisk(a, disk, 32, 4);
    const nothing = await leftovers.snapshot();
    const out = await runOnce({ source: sourceConfig(a), target: rbdTarget(a), glance: { endpoint: env.glance.url } }, source, failAt('unrecord', 'before'), disk);
    expect(out.error).toBeNull();
    expect(out.result).toMatchObject({ method: 'direct', glance: { status: 'active' } });
    const id = out.result!.imageId;
    const meta = (await rbdJson<Record<string, string>>(a, ['image-meta', 'list', `vms/${disk}`])) ?? {};
    const [key, value] = Object.entries(meta)[0]!;
    expect(key).toMatch(/^snapstore\.run\./);
    // As if the process had exited since: its record names a pid that is not running.
    const record = JSON.parse(value) as { owner: { pid: number; pidStart: string | null } };
    await rbd(a, ['image-meta', 'set', `vms/${disk}`, key, JSON.stringify({ ...record, owner: { ...record.owner, pidStart: 'gone' } })], 'nova');
    const c = coordinator({ source: sourceConfig(a), target: rbdTarget(a), glance: { endpoint: env.glance.url } });
    try {
      const report = await c.gc({ olderThanMs: 0 });
      expect(report.removed.filter((l) => l.location.includes(disk)).map((l) => l.kind)).toEqual(['source-snapshot', 'run-record']);
    } finally {
      await c.close();
    }
    await leftovers.expectUnchanged(nothing, producedBy(out.events, env.glance.url));
    expect(await glanceStatus(env.glance.url, id)).toBe('active');
    expect(await exportMd5(a, `images/${id}@snap`)).toBe(await exportMd5(a, `vms/${disk}`));
    await deleteGlanceImage(env.glance.url, id);
    await leftovers.expectUnchanged(nothing);
  });
});

describe('copy path: a failure at each step', () => {
  const a = () => env.clusters.a;
  const disk = uniqueName('coord-fault-copy');
  let source = '';
  let content = '';
  let shared: ReturnType<typeof faultyCoordinator>;
  beforeAll(async () => {
    source = await makeDisk(a(), disk, 32, 8);
    content = await exportMd5(a(), `vms/${disk}`);
    shared = faultyCoordinator({ source: sourceConfig(a()), target: rbdTarget(a()), glance: { endpoint: env.glance.url } });
  });
  afterAll(async () => {
    await shared.close();
    expect(await exportMd5(a(), `vms/${disk}`)).toBe(content);
  });
  const cases: Array<[StepName, FaultPoint['when']]> = [
    ...COPY_STEPS.filter((s) => s !== 'unrecord').map((s) => [s, 'before'] as [StepName, FaultPoint['when']]),
    ['copy', 'progress'],
    ['copy', 'after'],
    ['snap-create', 'after'],
  ];

  it.each(cases)('%s (%s): SNAPSHOT_FAILED and nothing left', async (step, when) => {
    const name = uniqueName('coord-fault-img');
    const nothing = await leftovers.snapshot();
    const out = await shared.run(source, failAt(step, when), { mode: 'copy', name });
    expect(out.result).toBeNull();
    expect(out.error).toMatchObject({ code: 'SNAPSHOT_FAILED', context: expect.objectContaining({ step, method: 'copy' }) });
    // The run was seen (its 'run' event), so the failure was at the step, not before the run began.
    expect(out.ids).toHaveLength(1);
    await leftovers.expectUnchanged(nothing);
  });
});

describe('real failures', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'coord-real-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it('Glance unreachable: a typed error before anything is created in Glance, nothing left', async () => {
    const a = env.clusters.a;
    const disk = uniqueName('coord-glance-down');
    const source = await makeDisk(a, disk, 32, 4);
    const nothing = await leftovers.snapshot();
    const url = `http://127.0.0.1:${await freePort()}`;
    const out = await runOnce({ source: sourceConfig(a), target: rbdTarget(a), glance: { endpoint: url } }, source, () => {}, disk);
    expect(out.error).toMatchObject({ code: 'SNAPSHOT_FAILED', context: expect.objectContaining({ step: 'glance-create' }) });
    expect((out.error as Error).cause).toMatchObject({ code: 'GLANCE_UNAVAILABLE' });
    expect(out.ids).toHaveLength(1);
    await leftovers.expectUnchanged(nothing);
  });

  it('Glance stopped mid-flatten: CLEANUP_FAILED names the Glance image; gc removes it once Glance is back', async () => {
    const a = env.clusters.a;
    const dir = join(scratch, 'glance-stopped');
    const glance = await startGlance(dir, a.dir);
    const disk = uniqueName('coord-glance-stop');
    const source = await makeDisk(a, disk, 32, 4);
    const nothing = await leftovers.snapshot({ glance: [glance.url] });
    const stopOnFlatten = async (p: FaultPoint) => {
      if (p.step === 'flatten' && p.when === 'before') await stopGlance(dir);
    };
    const events: CoordinatorEvent[] = [];
    const coord = coordinator(withFaults({ source: sourceConfig(a), target: rbdTarget(a), glance: { endpoint: glance.url } }, stopOnFlatten), events);
    let restarted: { url: string } | null = null;
    try {
      const err = await coord.snapshot(source, { name: disk }).catch((e: unknown) => e as Error & { context: Record<string, unknown> });
      expect(err).toMatchObject({ code: 'CLEANUP_FAILED', context: expect.objectContaining({ step: 'glance-add-location' }) });
      const [id] = events.flatMap((e) => (e.type === 'run' ? [e.imageId] : []));
      expect((err as unknown as { context: { leftovers: string[] } }).context.leftovers).toEqual([`delete Glance image ${id}`]);
      // The clone and the snapshot are gone; the run record stays, marked abandoned, for gc.
      const meta = (await rbdJson<Record<string, string>>(a, ['image-meta', 'list', `vms/${disk}`])) ?? {};
      expect(Object.entries(meta).map(([k, v]) => [k.startsWith('snapstore.run.'), JSON.parse(v).abandoned])).toEqual([[true, true]]);
      restarted = await startGlance(dir, a.dir);
      expect(await glanceStatus(restarted.url, id!)).toBe('queued');
      const gcCoord = coordinator({ source: sourceConfig(a), target: rbdTarget(a), glance: { endpoint: restarted.url } });
      try {
        const report = await gcCoord.gc({ olderThanMs: 0 });
        expect(report.removed.map((l) => l.kind)).toEqual(expect.arrayContaining(['glance-image', 'run-record']));
      } finally {
        await gcCoord.close();
      }
      expect(await glanceStatus(restarted.url, id!)).toBe('absent');
      // Same sqlite database, so the same image list: the probe reads it at the restarted Glance's address.
      nothing.scope.glance = nothing.scope.glance!.map((u) => (u === glance.url ? restarted!.url : u));
      nothing.listing.glance = Object.fromEntries(Object.entries(nothing.listing.glance).map(([u, l]) => [u === glance.url ? restarted!.url : u, l]));
      await leftovers.expectUnchanged(nothing);
    } finally {
      await coord.close();
      await stopGlance(dir);
    }
    // Two glance-api starts (about 4 s each on an idle machine, far more on a busy one).
  }, 180_000);

  it('cancelled mid-flatten: CANCELLED and nothing left', async () => {
    const a = env.clusters.a;
    const disk = uniqueName('coord-cancel');
    const source = await makeDisk(a, disk, 128, 64);
    const nothing = await leftovers.snapshot();
    const events: CoordinatorEvent[] = [];
    const coord = coordinator({ source: sourceConfig(a), target: rbdTarget(a) }, events);
    const ctl = new AbortController();
    try {
      const err = await coord
        .snapshot(source, {
          signal: ctl.signal,
          onProgress: (p) => {
            if (p.phase === 'flatten') ctl.abort();
          },
        })
        .catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'CANCELLED' });
      expect(events.filter((e) => e.type === 'run')).toHaveLength(1);
      await leftovers.expectUnchanged(nothing);
    } finally {
      await coord.close();
    }
  });

  it('bad input creates nothing and says what is wrong', async () => {
    const a = env.clusters.a;
    // A real disk too, so that a run that went ahead anyway (the bad image id) would have something to snapshot.
    await makeDisk(a, 'x', 16, 4);
    const nothing = await leftovers.snapshot();
    const events: CoordinatorEvent[] = [];
    const coord = coordinator({ source: sourceConfig(a), target: rbdTarget(a), glance: { endpoint: env.glance.url } }, events);
    try {
      await expect(coord.snapshot(`rbd://${a.fsid}/vms/${uniqueName('coord-missing')}`)).rejects.toMatchObject({ code: 'SOURCE_NOT_FOUND' });
      await expect(coord.snapshot(`rbd://${env.clusters.b.fsid}/vms/x`)).rejects.toMatchObject({ code: 'SOURCE_NOT_FOUND' });
      await expect(coord.snapshot('rbd://not-a-fsid/vms/x')).rejects.toMatchObject({ code: 'BAD_SOURCE' });
      await expect(coord.snapshot('http://example.com/x')).rejects.toMatchObject({ code: 'BAD_SOURCE' });
      await expect(coord.snapshot(`rbd://${a.fsid}/vms/x`, { imageId: '../etc' })).rejects.toMatchObject({ code: 'INVALID_IMAGE_ID' });
    } finally {
      await coord.close();
    }
    expect(events.filter((e) => e.type === 'run')).toEqual([]);
    await leftovers.expectUnchanged(nothing);
  });
});
