// The coordinator's pure parts, without a cluster: reading SOURCE strings, deciding a plan from findings,
// the names and marks gc relies on, the byte layout of a sparse copy, and the step engine's unwinding.
import { describe, expect, it } from 'vitest';
import { SnapshotCancelledError } from '../../src/coordinator/errors.js';
import { pieces, readPlan, sparseExtentStream, withZeros } from '../../src/coordinator/extents.js';
import {
  currentOwner,
  decodePendingMarker,
  decodeRunRecord,
  ownerState,
  probeImageName,
  probeTime,
  runIdOfSnap,
  sourceSnapName,
} from '../../src/coordinator/names.js';
import { capsFix, decidePlan, type PlanFacts } from '../../src/coordinator/plan.js';
import { formatSource, parseSource } from '../../src/coordinator/source.js';
import { StepFailure, StepRunner } from '../../src/coordinator/steps.js';
import type { CoordinatorEvent } from '../../src/coordinator/index.js';
import type { FaultInjector } from '../../src/coordinator/faults.js';

const FSID = '487fa79f-7f2e-43c7-b184-926649f940de';
const OTHER = 'b6fdf8a2-4a8b-4130-ad95-e615245ec91c';

describe('SOURCE strings', () => {
  // The grammar itself is covered by test/location.test.ts; these pin the coordinator's Source shape.
  it('reads disks, snapshots, files and the rbd CLI spelling', () => {
    expect(parseSource(`rbd://${FSID}/vms/disk_1`, 'vms')).toEqual({ kind: 'rbd', fsid: FSID, pool: 'vms', image: 'disk_1', snap: null });
    expect(parseSource(`rbd://${FSID.toUpperCase()}/vms/d/s%2Bx`, 'vms')).toEqual({ kind: 'rbd', fsid: FSID, pool: 'vms', image: 'd', snap: 's+x' });
    expect(parseSource('file:///var/tmp/a b.raw', undefined)).toEqual({ kind: 'file', path: '/var/tmp/a b.raw' });
    expect(parseSource('d', 'vms')).toEqual({ kind: 'rbd', fsid: null, pool: 'vms', image: 'd', snap: null });
    expect(parseSource('p/d@s', 'vms')).toEqual({ kind: 'rbd', fsid: null, pool: 'p', image: 'd', snap: 's' });
  });

  it('formats the canonical spelling, which reads back the same', () => {
    expect(formatSource(parseSource('p/d@s', 'vms'), FSID)).toBe(`rbd://${FSID}/p/d/s`);
    expect(formatSource(parseSource('p/d@s', 'vms'))).toBe('p/d@s');
    expect(formatSource(parseSource(`rbd://${OTHER}/p/d`, 'vms'), FSID)).toBe(`rbd://${OTHER}/p/d`);
    for (const text of [`rbd://${FSID}/vms/d%40x`, `rbd://${FSID}/my%20pool/d/s%2Bx`, 'file:///var/tmp/a b.raw', 'p/d']) {
      expect(formatSource(parseSource(text, undefined))).toBe(text);
    }
    expect(() => formatSource({ kind: 'rbd', fsid: null, pool: 'p', image: 'a@b', snap: null })).toThrow(
      expect.objectContaining({ code: 'BAD_SOURCE' }),
    );
  });

  it.each([
    ['', /empty/],
    ['rbd://x/vms/d', /"x" is not a cluster fsid/],
    ['rbd://disk', /names no cluster and pool/],
    [`rbd://${FSID}/vms`, /components, has 2/],
    [`rbd://${FSID}/a/b/c/d`, /components, has 5/],
    [`RBD://${FSID}/vms/d`, /schemes are lower case/],
    ['http://h/x', /scheme "http" is not supported/],
    ['/abs/path', /write it as file:\/\/\/abs\/path/],
    ['file:///var/tmp/a%20b.raw', /contains "%"/],
    ['a/b/c', /is not \[pool\/\]image\[@snap\]/],
    ['d', /names no pool/],
    [`rbd://${FSID}/vms/%zz`, /malformed percent escape/],
    [`rbd://${FSID}/vms/d%00`, /control character/],
  ])('refuses %j with BAD_SOURCE', (text, why) => {
    expect(() => parseSource(text, text === 'd' ? undefined : 'vms')).toThrow(
      expect.objectContaining({ code: 'BAD_SOURCE', message: expect.stringMatching(why) }),
    );
  });
});

describe('plan', () => {
  const base: PlanFacts = {
    source: { kind: 'rbd', fsid: FSID, pool: 'vms', image: 'd', snap: null },
    sourceCluster: { fsid: FSID, user: 'nova' },
    target: { kind: 'rbd', fsid: FSID, pool: 'images' },
    capsProbe: { ok: true },
    cloneFormat: 2,
    features: { layering: true, deepFlatten: true },
    snapProtected: null,
    fileFormat: null,
    glance: 'assumed',
  };

  it('goes direct when everything allows it, saying why for each finding', () => {
    const plan = decidePlan(base);
    expect(plan.method).toBe('direct');
    expect(plan.reasons.map((r) => r.code)).toEqual([
      'SOURCE_KIND',
      'TARGET_KIND',
      'RAW_FORMAT',
      'SAME_CLUSTER',
      'TARGET_CAPS',
      'SOURCE_FEATURES',
      'CLONE_FORMAT',
      'GLANCE_LOCATIONS',
    ]);
    expect(plan.reasons.every((r) => r.ok)).toBe(true);
  });

  it('copies for another cluster, missing caps (with the fix), no layering, a file, or Glance refusing', () => {
    expect(decidePlan({ ...base, target: { kind: 'rbd', fsid: OTHER, pool: 'images' }, capsProbe: null, cloneFormat: null }).method).toBe('copy');
    const caps = decidePlan({ ...base, capsProbe: { ok: false, permission: true, error: 'EPERM' }, cloneFormat: null });
    expect(caps.method).toBe('copy');
    expect(caps.blocker).toMatchObject({
      code: 'TARGET_CAPS',
      fix: "ceph auth caps client.nova mon 'profile rbd' osd 'profile rbd pool=vms, profile rbd pool=images'",
    });
    expect(decidePlan({ ...base, features: { layering: false, deepFlatten: false } }).method).toBe('copy');
    expect(decidePlan({ ...base, glance: 'refused' }).method).toBe('copy');
    expect(decidePlan({ ...base, target: { kind: 'file', dataDir: '/d' } }).method).toBe('copy');
    const file = decidePlan({ ...base, source: { kind: 'file', path: '/x.qcow2' }, sourceCluster: null, fileFormat: 'qcow2', features: null, capsProbe: null, cloneFormat: null });
    expect(file.reasons).toContainEqual(expect.objectContaining({ code: 'RAW_FORMAT', ok: false }));
  });

  it('does not protect a snapshot it did not take: an unprotected one on a clone-v1 cluster is copied', () => {
    const src = { kind: 'rbd' as const, fsid: FSID, pool: 'vms', image: 'd', snap: 'theirs' };
    expect(decidePlan({ ...base, source: src, cloneFormat: 1, snapProtected: false }).blocker).toMatchObject({
      code: 'SNAPSHOT_PROTECTED',
      fix: 'rbd snap protect vms/d@theirs',
    });
    expect(decidePlan({ ...base, source: src, cloneFormat: 1, snapProtected: true }).method).toBe('direct');
    expect(decidePlan({ ...base, source: src, cloneFormat: 2, snapProtected: false }).method).toBe('direct');
  });

  it('names one pool once in the caps fix when source and target share it', () => {
    expect(capsFix('nova', 'vms', 'vms')).toBe("ceph auth caps client.nova mon 'profile rbd' osd 'profile rbd pool=vms'");
  });
});

describe('names and marks', () => {
  it('recognises only its own snapshot names', () => {
    const id = '2b0e3f4a-1c2d-4e5f-8a9b-0c1d2e3f4a5b';
    expect(runIdOfSnap(sourceSnapName(id))).toBe(id);
    expect(runIdOfSnap('snapstore-backup')).toBeNull();
    expect(runIdOfSnap('snap')).toBeNull();
  });

  it('puts the birth time in a probe image name', () => {
    const before = Date.now();
    const t = probeTime(probeImageName())!;
    expect(t).toBeGreaterThanOrEqual(before);
    expect(t).toBeLessThanOrEqual(Date.now());
    expect(probeTime('snapstore-probe-not-a-uuid')).toBeNull();
  });

  it('reads back only marks it wrote', () => {
    expect(decodePendingMarker('')).toBeNull();
    expect(decodePendingMarker('{"v":1}')).toBeNull();
    expect(decodePendingMarker(JSON.stringify({ v: 1, runId: 'r', startedAt: 'x', owner: currentOwner(), source: 's', sourceSnap: 'evil' }))).toBeNull();
    expect(decodePendingMarker(JSON.stringify({ v: 1, runId: 'r', startedAt: 'x', owner: currentOwner(), source: 's', sourceSnap: null }))).not.toBeNull();
    const runId = '2b0e3f4a-1c2d-4e5f-8a9b-0c1d2e3f4a5b';
    const record = { v: 1, runId, startedAt: 'x', owner: currentOwner(), method: 'copy', source: 's', sourceSnap: sourceSnapName(runId), target: 't', glance: null };
    expect(decodeRunRecord(JSON.stringify(record))).toEqual(record);
    expect(decodeRunRecord(JSON.stringify({ ...record, sourceSnap: 'snapstore-other' }))).toBeNull();
  });

  it('tells a live owner from a dead one on this host, and cannot tell for another host', () => {
    const me = currentOwner();
    expect(ownerState(me)).toBe('alive');
    expect(ownerState({ ...me, pidStart: '1' })).toBe('dead');
    expect(ownerState({ ...me, pid: 2 ** 22 + 1 })).toBe('dead');
    expect(ownerState({ ...me, host: 'elsewhere' })).toBe('unknown');
  });
});

describe('sparse copy layout', () => {
  const MiB = 1024 * 1024;
  const extents = [
    { offset: 10 * MiB, length: 6 * MiB, exists: true },
    { offset: 2 * MiB, length: MiB, exists: true },
    { offset: 30 * MiB, length: MiB, exists: false },
  ];

  const PIECE = MiB;

  it('cuts data into pieces of at most pieceBytes and gives each hole as one piece, covering the whole image', () => {
    const out = [...pieces(extents, 20 * MiB, PIECE)];
    let pos = 0;
    for (const p of out) {
      expect(p.offset).toBe(pos);
      expect(p.length).toBeGreaterThan(0);
      const inData = (p.offset >= 2 * MiB && p.offset < 3 * MiB) || (p.offset >= 10 * MiB && p.offset < 16 * MiB);
      expect(p.data).toBe(inData);
      if (p.data) expect(p.length).toBeLessThanOrEqual(PIECE);
      pos += p.length;
    }
    expect(pos).toBe(20 * MiB);
    // Pieces never straddle a data/hole boundary; the holes [0,2) [3,10) [16,20) are one piece each.
    expect(out.filter((p) => p.data).reduce((n, p) => n + p.length, 0)).toBe(7 * MiB);
    expect(out.filter((p) => !p.data).map((p) => p.length)).toEqual([2 * MiB, 7 * MiB, 4 * MiB]);
  });

  it('gives a TiB of hole as one piece, and cuts data at multiples of pieceBytes', () => {
    const TiB = 1024 * 1024 * MiB;
    const out = [...pieces([{ offset: TiB - 3 * MiB, length: 2 * MiB + 5, exists: true }], TiB, 4 * MiB)];
    expect(out).toEqual([
      { offset: 0, length: TiB - 3 * MiB, data: false },
      { offset: TiB - 3 * MiB, length: 2 * MiB + 5, data: true },
      { offset: TiB - MiB + 5, length: MiB - 5, data: false },
    ]);
    expect([...pieces([{ offset: MiB, length: 8 * MiB, exists: true }], 9 * MiB, 4 * MiB)].map((p) => p.length)).toEqual([MiB, 3 * MiB, 4 * MiB, MiB]);
  });

  it('sizes reads from the object size and rbd_concurrent_management_ops', () => {
    expect(readPlan(4 * MiB, 10)).toEqual({ pieceBytes: MiB, parallel: 10 });
    expect(readPlan(32 * MiB, 16)).toEqual({ pieceBytes: MiB, parallel: 16 });
    expect(readPlan(256 * 1024, 100)).toEqual({ pieceBytes: 256 * 1024, parallel: 32 });
    expect(readPlan(4096, Number.NaN)).toEqual({ pieceBytes: 64 * 1024, parallel: 10 });
  });

  it('with reuseBuffers, reads into a ring of parallel + 1 buffers, yields the right bytes and holes as lengths', async () => {
    const size = 20 * MiB;
    const byte = (offset: number) => (offset / MiB) % 251 + 1;
    const used = new Set<ArrayBufferLike>();
    const image = {
      read: async (offset: number, length: number, into?: Buffer) => {
        const buf = into ?? Buffer.allocUnsafe(length);
        used.add(buf.buffer);
        await new Promise((r) => setTimeout(r, 1));
        return buf.fill(byte(offset), 0, length);
      },
    };
    const check = async (reuseBuffers: boolean) => {
      used.clear();
      let pos = 0;
      let holes = 0;
      for await (const item of sparseExtentStream(image, extents, size, { plan: { pieceBytes: PIECE, parallel: 3 }, reuseBuffers })) {
        const inData = (pos >= 2 * MiB && pos < 3 * MiB) || (pos >= 10 * MiB && pos < 16 * MiB);
        if (!Buffer.isBuffer(item)) {
          expect(inData).toBe(false);
          holes += item.hole;
          pos += item.hole;
          continue;
        }
        expect(inData).toBe(true);
        expect(item[0]).toBe(byte(pos - (pos % PIECE)));
        expect(item[item.length - 1]).toBe(item[0]);
        pos += item.length;
      }
      expect(pos).toBe(size);
      expect(holes).toBe(13 * MiB);
      return used.size;
    };
    expect(await check(true)).toBeLessThanOrEqual(4);
    // Without it every data piece gets its own buffer (a consumer may keep them).
    expect(await check(false)).toBe(7 * MiB / PIECE);
  });

  it('turns holes back into zeros for a consumer that needs every byte', async () => {
    const source = (async function* () {
      yield Buffer.from([1, 2]);
      yield { hole: 3 * MiB + 1 };
      yield Buffer.from([3]);
    })();
    const parts: Uint8Array[] = [];
    for await (const p of withZeros(source)) parts.push(p);
    const all = Buffer.concat(parts);
    expect(all.length).toBe(3 * MiB + 4);
    expect([all[0], all[1], all[all.length - 1]]).toEqual([1, 2, 3]);
    expect(all.subarray(2, all.length - 1).every((b) => b === 0)).toBe(true);
  });
});

describe('step engine', () => {
  function runner(opts: { faults?: FaultInjector; signal?: AbortSignal } = {}) {
    const events: CoordinatorEvent[] = [];
    return { events, r: new StepRunner({ runId: 'r', path: 'direct', emit: (e) => events.push(e), ...opts }) };
  }

  it('unwinds newest first, runs `always` entries on success too, skips released ones', async () => {
    const { r } = runner();
    const order: string[] = [];
    r.undo('a', async () => void order.push('a'));
    r.always('close', async () => void order.push('close'));
    const b = r.undo('b', async () => void order.push('b'));
    r.undo('c', async () => void order.push('c'));
    b.release();
    expect(await r.rollback()).toEqual([]);
    expect(order).toEqual(['c', 'close', 'a']);

    const ok = runner().r;
    const done: string[] = [];
    ok.undo('x', async () => void done.push('x'));
    ok.always('close', async () => void done.push('close'));
    await ok.finish();
    expect(done).toEqual(['close']);
  });

  it('keeps going past a failing undo, retrying it, and tells the later ones', async () => {
    const { r } = runner();
    const seen: boolean[] = [];
    r.undo('record', async ({ failed }) => void seen.push(failed));
    let tries = 0;
    r.undo('stubborn', async () => {
      tries++;
      throw new Error('still busy');
    });
    const failures = await r.rollback();
    expect(failures.map((f) => f.what)).toEqual(['stubborn']);
    expect(tries).toBe(4);
    expect(seen).toEqual([true]);
  }, 10_000);

  it('fails a step before or after its operation, or from a progress report, as the injector says', async () => {
    let calls = 0;
    const op = async () => void calls++;
    const before = runner({ faults: (p) => { if (p.when === 'before') throw new Error('x'); } }).r;
    await expect(before.step('clone', op)).rejects.toBeInstanceOf(StepFailure);
    expect(calls).toBe(0);
    const after = runner({ faults: (p) => { if (p.when === 'after') throw new Error('x'); } }).r;
    await expect(after.step('clone', op)).rejects.toMatchObject({ step: 'clone' });
    expect(calls).toBe(1);
    const during = runner({ faults: (p) => { if (p.when === 'progress' && p.done === 2) throw new Error('mid'); } }).r;
    const reports: boolean[] = [];
    await expect(
      during.step('flatten', async () => {
        for (const done of [1, 2, 3]) reports.push(during.progress('flatten', 'flatten', done, 3));
      }),
    ).rejects.toMatchObject({ cause: expect.objectContaining({ message: 'mid' }) });
    expect(reports).toEqual([true, false, false]);
  });

  it('turns an aborted signal into CANCELLED at the next step', async () => {
    const ctl = new AbortController();
    const { r } = runner({ signal: ctl.signal });
    await r.step('record', async () => ctl.abort());
    await expect(r.step('clone', async () => {})).rejects.toBeInstanceOf(SnapshotCancelledError);
  });
});
