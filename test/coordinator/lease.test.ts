// Liveness by lease, on a test bed of this file's own (the leftovers probe compares whole clusters): a run
// registers in its pool's journal and renews its lease while it works. gc from another host or another PID
// namespace, with the smallest thresholds it accepts, never touches such a run; a killed run's leftovers go
// once its lease ran out (another host) or at once (provably dead here); thresholds below two lease periods
// are refused. A flatten lease keeps other flatteners off until it runs out. Journal entries a client.nova
// could forge remove nothing that is not the run's. Short leases (SNAPSTORE_LEASE_SECONDS) keep it quick.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import * as rbdNapi from 'ceph-rbd-napi';
import { describe, expect, it } from 'vitest';
import { Flattener, type CoordinatorEvent, type FlattenerEvent } from '../../src/coordinator/index.js';
import { withFaults, type StepName } from '../../src/coordinator/faults.js';
import { hasCode } from '../../src/errors.js';
import { JOURNAL_OBJECT } from '../../src/coordinator/journal/index.js';
import { adminOf, leftoversOf, producedBy } from '../support/leftovers.js';
import { ownTestbed } from '../support/own-bed.js';
import { rbd, uniqueName } from '../support/testbed.js';
import { coordinator, deleteGlanceImage, exportMd5, glanceStatus, imageInfo, makeDisk, rbdTarget, removeImage, snaps, sourceConfig } from './helpers.js';

const LEASE_SECONDS = 6;
process.env.SNAPSTORE_LEASE_SECONDS = String(LEASE_SECONDS);
/** What the CLI accepts at least: two lease periods. */
const MIN_THRESHOLD = 2 * LEASE_SECONDS;
/** Lease plus the clock-skew allowance (half a lease for short leases): after this an unrenewed lease is over. */
const EXPIRY_MS = LEASE_SECONDS * 1500;

const env = ownTestbed({ glance: true });
const leftovers = leftoversOf(env);
const here = dirname(fileURLToPath(import.meta.url));
const cli = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const childModule = fileURLToPath(new URL('../../dist/coordinator/index.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'snapstore-lease-'));

/** nova.conf for the own bed's cluster a (written on first use: the bed starts in beforeAll). */
function novaConf(): string {
  const p = join(dir, 'nova.conf');
  writeFileSync(p, `[libvirt]\nimages_type = rbd\nimages_rbd_pool = vms\nimages_rbd_ceph_conf = ${env.clusters.a.conf}\nrbd_user = nova\n`);
  return p;
}

function fileStoreConf(dataDir: string): string {
  const p = join(dir, `glance-${randomUUID()}.conf`);
  writeFileSync(p, `[glance_store]\ndefault_store = file\nfilesystem_store_datadir = ${dataDir}\n`);
  return p;
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The CLI, optionally inside a new PID namespace (`unshare -p -f --mount-proc`), with extra environment. */
function snapstore(args: string[], extra: Record<string, string> = {}, pidNamespace = false): Promise<Run> {
  const [cmd, argv] = pidNamespace ? ['unshare', ['-p', '-f', '--mount-proc', process.execPath, cli, ...args]] : [process.execPath, [cli, ...args]];
  return new Promise((resolve) => {
    execFile(cmd as string, argv as string[], { env: { ...process.env, SNAPSTORE_LEASE_SECONDS: String(LEASE_SECONDS), ...extra } }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

interface Seen {
  kind: string;
  location: string;
  runId: string | null;
  action: string;
  why: string | null;
}

function gcJson(r: Run): { found: Seen[]; removed: Seen[]; seen: Seen[] } {
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as { found: Seen[]; removed: Seen[]; seen: Seen[] };
}

/** The journal's entries in a pool of cluster a (as admin), by key. */
async function journal(pool: string, keys: string[]): Promise<Map<string, Buffer>> {
  const io = await (await adminOf(env.clusters.a)).openIoctx(pool);
  try {
    return await rbdNapi.omapGet(io, JOURNAL_OBJECT, keys).catch((err: unknown) => {
      if (err instanceof rbdNapi.NotFoundError) return new Map<string, Buffer>();
      throw err;
    });
  } finally {
    await io.close();
  }
}

async function writeJournal(pool: string, steps: rbdNapi.WriteStep[]): Promise<void> {
  const io = await (await adminOf(env.clusters.a)).openIoctx(pool);
  try {
    await rbdNapi.writeOp(io, JOURNAL_OBJECT, steps);
  } finally {
    await io.close();
  }
}

/** A copy snapshot in a child process (the compiled coordinator), killed with SIGKILL mid-copy; its run id. */
async function killedMidCopy(source: string, dataDir: string, extraEnv: Record<string, string>): Promise<string> {
  const args = { options: { source: sourceConfig(env.clusters.a), target: { kind: 'file', dataDir } }, source, snapshot: {}, freezeOnPhase: 'copy' };
  const mid = (e: CoordinatorEvent) => e.type === 'progress' && e.phase === 'copy' && e.done > 0 && e.done < e.total;
  return (await killedAt(args, extraEnv, mid)).runId;
}

/** A snapshot in a child process, frozen (see snapshot-child.mjs) and killed with SIGKILL at the first event `at` matches. */
async function killedAt(args: object, extraEnv: Record<string, string>, at: (e: CoordinatorEvent) => boolean): Promise<{ runId: string; imageId: string }> {
  const child: ChildProcess = spawn(process.execPath, [join(here, 'fixtures', 'snapshot-child.mjs'), childModule, JSON.stringify(args)], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, ...extraEnv },
  });
  const run = await new Promise<{ runId: string; imageId: string }>((resolve, reject) => {
    const ids = { runId: '', imageId: '' };
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const e = JSON.parse(line) as CoordinatorEvent;
      if (e.type === 'run') Object.assign(ids, { runId: e.runId, imageId: e.imageId });
      if (at(e)) resolve(ids);
    });
    child.on('exit', (code, signal) => reject(new Error(`child exited (${code ?? signal}) before the kill point`)));
  });
  const exited = new Promise((r) => child.on('exit', r));
  child.kill('SIGKILL');
  await exited;
  return run;
}

/**
 * A copy snapshot into `dataDir` in this process that stops before removing its source snapshot until
 * resumed: it holds its snapshot, its pending target and its journal entry meanwhile (a long run, to gc).
 * `reached` resolves with its run id once it waits.
 */
function pausedRun(source: string, dataDir: string, pauseAt: StepName = 'snap-remove') {
  let paused!: () => void;
  const waiting = new Promise<void>((r) => {
    paused = r;
  });
  let resume!: () => void;
  const gate = new Promise<void>((r) => {
    resume = r;
  });
  const slow = withFaults({ source: sourceConfig(env.clusters.a), target: { kind: 'file' as const, dataDir } }, async (p) => {
    if (p.step === pauseAt && p.when === 'before') {
      paused();
      await gate;
    }
  });
  const events: CoordinatorEvent[] = [];
  const c = coordinator(slow, events);
  const run = c.snapshot(source, {});
  run.catch(() => {});
  const reached = waiting.then(() => events.flatMap((e) => (e.type === 'run' ? [e.runId] : []))[0] ?? '');
  return { c, events, run, reached, resume };
}

describe('a run whose lease is renewed', () => {
  it('is never touched by gc with the smallest thresholds from another host or another PID namespace, and finishes', async () => {
    const a = env.clusters.a;
    const disk = uniqueName('lease-live');
    const source = await makeDisk(a, disk, 32, 8);
    const before = await exportMd5(a, `vms/${disk}`);
    const dataDir = mkdtempSync(join(dir, 'live-'));
    const nothing = await leftovers.snapshot({ dirs: [dataDir] });
    const { c, events, run, reached, resume } = pausedRun(source, dataDir);
    try {
      const runId = await reached;
      // Longer than a lease and the skew allowance: an entry nobody renewed would be expired by now.
      await sleep(EXPIRY_MS + 1000);

      const gcArgs = ['gc', '--older-than', String(MIN_THRESHOLD), '--config', novaConf(), '--config', fileStoreConf(dataDir)];
      const otherHost = gcJson(await snapstore([...gcArgs, '--json'], { SNAPSTORE_HOST_ID: 'another-host' }));
      expect(otherHost.removed).toEqual([]);
      const kept = otherHost.seen.filter((l) => l.runId === runId);
      expect(kept.length).toBeGreaterThan(0);
      for (const l of kept) expect(l).toMatchObject({ action: 'kept', why: expect.stringMatching(/^lease valid until \d{4}-/) });

      // Same host name, another PID namespace: pids there say nothing about this process.
      const container = await snapstore(gcArgs, {}, true);
      expect(container.code).toBe(0);
      expect(container.stdout).toMatch(new RegExp(`kept: lease valid until [^\\n]*#run\\.${runId}`));
      expect(container.stdout).not.toMatch(/^\s+removed/m);

      resume();
      const result = await run;
      expect(result.method).toBe('copy');
      expect((await journal('vms', [`run.${runId}`])).size).toBe(0);
    } finally {
      resume();
      await c.close();
    }
    await leftovers.expectUnchanged(nothing, producedBy(events));
    expect(await exportMd5(a, `vms/${disk}`)).toBe(before);
  }, 120_000);
});

describe('a run whose lease another process took over', () => {
  it('stops at its next step (CANCELLED, caused by LEASE_LOST) and removes what it made', async () => {
    const a = env.clusters.a;
    const disk = uniqueName('lease-lost');
    const source = await makeDisk(a, disk, 32, 8);
    const dataDir = mkdtempSync(join(dir, 'lost-'));
    const nothing = await leftovers.snapshot({ dirs: [dataDir] });
    const { c, run, reached, resume } = pausedRun(source, dataDir);
    let key = '';
    try {
      key = `run.${await reached}`;
      // What a taker writes: the entry is no longer the text the run renews from.
      await writeJournal('vms', [{ op: 'omapSet', entries: { [key]: 'taken over' } }]);
      // A renewal tick (a quarter lease) finds it.
      await sleep((LEASE_SECONDS * 1000) / 2);
      resume();
      const err = await run.catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'CANCELLED' });
      expect(hasCode(err, 'LEASE_LOST')).toBe(true);
      // The run never writes over the taker's entry.
      expect((await journal('vms', [key])).get(key)?.toString()).toBe('taken over');
    } finally {
      resume();
      await c.close();
      if (key) await writeJournal('vms', [{ op: 'omapRm', keys: [key] }]);
    }
    await leftovers.expectUnchanged(nothing);
  }, 60_000);
});

describe('a killed run', () => {
  it('on another host: kept while its lease lasts, everything removed once it ran out', async () => {
    const a = env.clusters.a;
    const disk = uniqueName('lease-dead-remote');
    const source = await makeDisk(a, disk, 64, 32);
    const dataDir = mkdtempSync(join(dir, 'remote-'));
    const nothing = await leftovers.snapshot({ dirs: [dataDir] });
    const runId = await killedMidCopy(source, dataDir, { SNAPSTORE_HOST_ID: 'host-that-died' });
    expect((await journal('vms', [`run.${runId}`])).size).toBe(1);
    const gcArgs = ['gc', '--json', '--older-than', String(MIN_THRESHOLD), '--config', novaConf(), '--config', fileStoreConf(dataDir)];

    const early = gcJson(await snapstore(gcArgs));
    expect(early.removed).toEqual([]);
    expect(early.seen.filter((l) => l.runId === runId).map((l) => l.action)).toContain('kept');
    expect(readdirSync(dataDir).length).toBeGreaterThan(0);

    await sleep(EXPIRY_MS + 500);
    const late = gcJson(await snapstore(gcArgs));
    const mine = late.removed.filter((l) => l.runId === runId);
    expect(mine.map((l) => l.kind).sort()).toEqual(['run-record', 'run-record', 'source-snapshot', 'target']);
    expect(late.seen.filter((l) => l.runId === runId).every((l) => l.action === 'removed')).toBe(true);
    expect((await journal('vms', [`run.${runId}`])).size).toBe(0);
    await leftovers.expectUnchanged(nothing);
  }, 120_000);

  it('on this host: provably dead, so gc with its default threshold removes everything at once', async () => {
    const a = env.clusters.a;
    const disk = uniqueName('lease-dead-local');
    const source = await makeDisk(a, disk, 64, 32);
    const dataDir = mkdtempSync(join(dir, 'local-'));
    const nothing = await leftovers.snapshot({ dirs: [dataDir] });
    const runId = await killedMidCopy(source, dataDir, {});
    const report = gcJson(await snapstore(['gc', '--json', '--config', novaConf(), '--config', fileStoreConf(dataDir)]));
    expect(report.removed.filter((l) => l.runId === runId).map((l) => l.kind).sort()).toEqual(['run-record', 'run-record', 'source-snapshot', 'target']);
    expect((await journal('vms', [`run.${runId}`])).size).toBe(0);
    await leftovers.expectUnchanged(nothing);
  }, 120_000);
});

/** A 64 MiB file of random bytes, as a `file://` source. */
function fileSource(): string {
  const path = join(dir, `${uniqueName('disk')}.raw`);
  writeFileSync(path, randomBytes(64 * 1024 * 1024));
  return `file://${path}`;
}

describe('a file:// source run', () => {
  it('holds a journal entry: gc from another host, past the threshold, keeps its marked target while the lease is renewed', async () => {
    const source = fileSource();
    const dataDir = mkdtempSync(join(dir, 'file-live-'));
    const nothing = await leftovers.snapshot({ dirs: [dataDir] });
    // Paused with its target written and marked: what discard would remove (image, temporary files, mark).
    const { c, events, run, reached, resume } = pausedRun(source, dataDir, 'unmark-target');
    try {
      const runId = await reached;
      expect((await journal('vms', [`run.${runId}`])).size).toBe(1);
      // Older than the threshold: judged by age, as before the journal held file runs, it would go.
      await sleep(MIN_THRESHOLD * 1000 + 1000);
      const gcArgs = ['gc', '--json', '--older-than', String(MIN_THRESHOLD), '--config', novaConf(), '--config', fileStoreConf(dataDir)];
      const otherHost = gcJson(await snapstore(gcArgs, { SNAPSTORE_HOST_ID: 'another-host' }));
      expect(otherHost.removed).toEqual([]);
      const kept = otherHost.seen.filter((l) => l.runId === runId);
      expect(kept.length).toBeGreaterThan(0);
      for (const l of kept) expect(l).toMatchObject({ action: 'kept', why: expect.stringMatching(/^lease valid until \d{4}-/) });
      resume();
      await run;
      expect((await journal('vms', [`run.${runId}`])).size).toBe(0);
    } finally {
      resume();
      await c.close();
    }
    await leftovers.expectUnchanged(nothing, producedBy(events));
  }, 120_000);

  it('killed on another host: kept while its lease lasts, then its target, temporary file and entry removed', async () => {
    const source = fileSource();
    const dataDir = mkdtempSync(join(dir, 'file-dead-'));
    const nothing = await leftovers.snapshot({ dirs: [dataDir] });
    const runId = await killedMidCopy(source, dataDir, { SNAPSTORE_HOST_ID: 'host-that-died' });
    expect((await journal('vms', [`run.${runId}`])).size).toBe(1);
    expect(readdirSync(dataDir).some((n) => n.endsWith('.tmp'))).toBe(true);
    const gcArgs = ['gc', '--json', '--older-than', String(MIN_THRESHOLD), '--config', novaConf(), '--config', fileStoreConf(dataDir)];
    expect(gcJson(await snapstore(gcArgs)).removed).toEqual([]);
    await sleep(EXPIRY_MS + 500);
    const late = gcJson(await snapstore(gcArgs));
    expect(late.removed.filter((l) => l.runId === runId).map((l) => l.kind).sort()).toEqual(['run-record', 'target']);
    expect((await journal('vms', [`run.${runId}`])).size).toBe(0);
    expect(readdirSync(dataDir)).toEqual([]);
    await leftovers.expectUnchanged(nothing);
  }, 120_000);
});

describe('a run killed after registering in Glance, before its mark came off', () => {
  it('leaves a registered image gc keeps (clearing its mark), and nothing else', async () => {
    const a = env.clusters.a;
    const glance = env.glance!.url;
    const disk = uniqueName('lease-registered');
    const source = await makeDisk(a, disk, 32, 8);
    const nothing = await leftovers.snapshot();
    const options = { source: sourceConfig(a), target: rbdTarget(a), glance: { endpoint: glance } };
    const started = (e: CoordinatorEvent) => e.type === 'step' && e.step === 'unmark-clone' && e.state === 'start';
    const { runId, imageId } = await killedAt({ options, source, snapshot: { mode: 'direct' }, freezeOnStep: 'unmark-clone' }, {}, started);
    try {
      expect(await glanceStatus(glance, imageId)).toBe('active');
      // Provably dead here: gc takes the run at once, and finds it got as far as Glance.
      const events: CoordinatorEvent[] = [];
      const c = coordinator(options, events);
      const report = await c.gc({}).finally(() => c.close());
      const mine = report.seen.filter((l) => l.runId === runId);
      expect(mine.find((l) => l.kind === 'clone')).toMatchObject({ action: 'kept', why: expect.stringMatching(/active/) });
      expect(report.removed.filter((l) => l.runId === runId).map((l) => l.kind).sort()).toEqual(['run-record', 'run-record', 'source-snapshot']);
      expect(await glanceStatus(glance, imageId)).toBe('active');
      expect(await rbd(a, ['image-meta', 'list', `images/${imageId}`])).not.toContain('snapstore.pending');
      expect((await snaps(a, `vms/${disk}`)).map((x) => x.name)).toEqual([]);
      expect((await journal('vms', [`run.${runId}`])).size).toBe(0);
    } finally {
      await deleteGlanceImage(glance, imageId).catch(() => {});
      await removeImage(a, `images/${imageId}`);
    }
    await leftovers.expectUnchanged(nothing);
  }, 120_000);
});

describe('thresholds', () => {
  it('below two lease periods are refused with USAGE', async () => {
    for (const args of [
      ['gc', '--older-than', String(MIN_THRESHOLD - 1)],
      ['gc', '--older-than', '0'],
      ['flattener', '--once', '--stale-lock-seconds', '0'],
    ]) {
      const r = await snapstore([...args, '--config', novaConf()]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`must be at least ${MIN_THRESHOLD} seconds.*\\[USAGE\\]`));
    }
    // With the default lease (60 s) the least is 120 s.
    const r = await snapstore(['gc', '--older-than', '60', '--config', novaConf()], { SNAPSTORE_LEASE_SECONDS: '' });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/at least 120 seconds/);
  });
});

describe('the flatten queue index', () => {
  it('a poll opens only the clones the journal indexes; scanImages finds a request of an older version and indexes it; a stale entry is dropped', async () => {
    const a = env.clusters.a;
    const disk = uniqueName('queue-index');
    const clone = uniqueName('queued');
    await makeDisk(a, disk, 16, 0);
    const nothing = await leftovers.snapshot();
    const f = new Flattener({ source: sourceConfig(a), target: { pool: 'images' } });
    const scanning = new Flattener({ source: sourceConfig(a), target: { pool: 'images' }, scanImages: true });
    const queued = async (flattener: Flattener) => (await flattener.pending()).map((p) => p.image);
    try {
      await rbd(a, ['snap', 'create', `vms/${disk}@base`]);
      await rbd(a, ['clone', `vms/${disk}@base`, `images/${clone}`, '--rbd-default-clone-format', '2']);
      // What a version before the index left: the request on the clone, no journal entry.
      const request = { v: 1, requestedAt: new Date().toISOString(), runId: randomUUID(), source: `rbd://${a.fsid}/vms/${disk}`, sourceSnap: null };
      await rbd(a, ['image-meta', 'set', `images/${clone}`, 'snapstore.flatten', JSON.stringify(request)]);
      expect(await queued(f)).not.toContain(clone);
      expect(await queued(scanning)).toContain(clone);
      expect((await journal('images', [`queued.${clone}`])).size).toBe(1);
      expect(await queued(f)).toContain(clone);
      await rbd(a, ['image-meta', 'remove', `images/${clone}`, 'snapstore.flatten']);
      expect(await queued(f)).not.toContain(clone);
      expect((await journal('images', [`queued.${clone}`])).size).toBe(0);
    } finally {
      await f.close();
      await scanning.close();
      await removeImage(a, `images/${clone}`);
      await rbd(a, ['snap', 'rm', `vms/${disk}@base`]).catch(() => '');
    }
    await leftovers.expectUnchanged(nothing);
  }, 60_000);
});

describe('a flatten lease held by another host', () => {
  it('keeps other flatteners off while it lasts; after it ran out one takes over, blocklists the holder and finishes', async () => {
    const a = env.clusters.a;
    const disk = uniqueName('flatten-lease');
    const source = await makeDisk(a, disk, 64, 16);
    const nothing = await leftovers.snapshot();
    const c = coordinator({ source: sourceConfig(a), target: rbdTarget(a, 'nova') });
    // The other host's flattener: its connection holds the lock on the clone; the one its journal entry
    // names is another (breaking the lock blocklists the lock's holder; this one only the takeover does).
    const other = await rbdNapi.Cluster.connect({ confPath: a.conf, user: 'nova' });
    const leaseHolder = await rbdNapi.Cluster.connect({ confPath: a.conf, user: 'nova' });
    let id = '';
    try {
      id = (await c.snapshot(source, { flatten: 'background' })).imageId;
      const before = await exportMd5(a, `vms/${disk}`);
      const io = await other.openIoctx('images');
      const clone = await io.openImage(id);
      const owner = { host: 'other-host', pid: 4242, pidStart: null, bootId: 'b', pidNs: 'pid:[1]' };
      await clone.lockAcquireExclusive(`snapstore-flattener ${JSON.stringify({ owner, at: Date.now(), lease: true })}`);
      const key = `flatten.${id}`;
      const entry = { v: 1, key, owner, client: await rbdNapi.clientAddress(leaseHolder), leaseUntil: new Date(Date.now() + LEASE_SECONDS * 1000).toISOString() };
      await writeJournal('images', [{ op: 'create', exclusive: false }, { op: 'omapSet', entries: { [key]: JSON.stringify(entry) } }]);

      const events: FlattenerEvent[] = [];
      const f = new Flattener({ source: sourceConfig(a), target: { pool: 'images' }, images: [id], logger: (e) => events.push(e) });
      try {
        const early = await f.runOnce();
        expect(early.flattened).toEqual([]);
        expect(early.skipped).toEqual([{ image: id, why: expect.stringMatching(/^being flattened: lease valid until .*other-host:4242/) }]);
        expect((await imageInfo(a, `images/${id}`)).parent).toBeDefined();

        await sleep(EXPIRY_MS + 500);
        const late = await f.runOnce();
        expect(late.flattened).toEqual([id]);
        expect(events).toContainEqual(expect.objectContaining({ type: 'lock-broken', image: id, why: expect.stringMatching(/^lease expired at /) }));
      } finally {
        await f.close();
      }
      expect((await imageInfo(a, `images/${id}`)).parent).toBeUndefined();
      expect(await exportMd5(a, `images/${id}@snap`)).toBe(before);
      // The old owner's client is blocklisted: it can write nothing more.
      const lio = await leaseHolder.openIoctx('images');
      await expect(rbdNapi.writeOp(lio, JOURNAL_OBJECT, [{ op: 'omapSet', entries: { [key]: 'late write' } }])).rejects.toBeInstanceOf(rbdNapi.RbdError);
      // And the lease is given back: no entry left.
      expect((await journal('images', [key])).size).toBe(0);
      await Promise.all([lio.close(), clone.close()].map((p) => p.catch(() => {})));
      await io.close().catch(() => {});
    } finally {
      await Promise.all([other.close(), leaseHolder.close()].map((p) => p.catch(() => {})));
      await c.close();
      if (id) {
        await writeJournal('images', [{ op: 'omapRm', keys: [`flatten.${id}`] }]).catch(() => {});
        await removeImage(a, `images/${id}`);
      }
    }
    await leftovers.expectUnchanged(nothing);
  }, 120_000);
});

/** A journal entry as a dead run on another host would have left it (its lease long over). */
function deadEntry(runId: string, record: Record<string, unknown>): [string, string] {
  const owner = { host: 'elsewhere', pid: 1, pidStart: null, bootId: null };
  const key = `run.${runId}`;
  const startedAt = new Date(Date.now() - 3_600_000).toISOString();
  const full = { v: 1, runId, startedAt, owner, glance: null, ...record };
  return [key, JSON.stringify({ v: 1, key, owner, client: null, leaseUntil: new Date(Date.now() - 600_000).toISOString(), record: full })];
}

describe('gc and journal entries anyone with the disks’ user could write', () => {
  it('a bad percent-escape and a forged target stop nothing and remove nothing that is not the run’s', async () => {
    const a = env.clusters.a;
    const glance = env.glance!.url;
    const disk = uniqueName('gc-journal');
    const source = await makeDisk(a, disk, 16, 0);
    // A finished image and a queued Glance image that snapstore did not make.
    const victim = uniqueName('gc-victim');
    await rbd(a, ['create', `images/${victim}`, '--size', '4M']);
    await rbd(a, ['snap', 'create', `images/${victim}@snap`]);
    const created = await fetch(`${glance}/v2/images`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: victim, disk_format: 'raw', container_format: 'bare' }),
    });
    const glanceVictim = ((await created.json()) as { id: string }).id;
    const planted = await leftovers.snapshot();

    const badEscape = randomUUID();
    const forged = randomUUID();
    const real = randomUUID();
    // The real dead run took its snapshot of the disk and died.
    await rbd(a, ['snap', 'create', `vms/${disk}@snapstore-${real}`], 'nova');
    const entries = Object.fromEntries([
      deadEntry(badEscape, { method: 'copy', source, sourceSnap: null, target: `rbd://${a.fsid}/images/%E0%A4%A` }),
      deadEntry(forged, { method: 'copy', source, sourceSnap: null, target: `rbd://${a.fsid}/images/${victim}/snap`, imageId: victim, glance: { id: glanceVictim, created: true } }),
      deadEntry(real, { method: 'copy', source, sourceSnap: `snapstore-${real}`, target: 'glance:none' }),
    ]);
    await writeJournal('vms', [{ op: 'create', exclusive: false }, { op: 'omapSet', entries }]);

    const events: CoordinatorEvent[] = [];
    const c = coordinator({ source: sourceConfig(a), target: rbdTarget(a), glance: { endpoint: glance } }, events);
    try {
      const report = await c.gc({});
      // The real dead run's snapshot and entry are gone, whatever the other entries hold.
      expect(report.removed.filter((l) => l.runId === real).map((l) => l.kind).sort()).toEqual(['run-record', 'run-record', 'source-snapshot']);
      // The bad escape names nothing of this store: kept, with why.
      expect(report.seen.filter((l) => l.runId === badEscape).map((l) => [l.action, l.why])).toContainEqual(['kept', expect.stringContaining('not reachable')]);
      expect((await snaps(a, `images/${victim}`)).map((s) => s.name)).toEqual(['snap']);
      expect(await glanceStatus(glance, glanceVictim)).toBe('queued');
      expect(events).toContainEqual(expect.objectContaining({ type: 'gc-skipped', why: expect.stringContaining(`nothing shows it belongs to run ${forged}`) }));
      // The entry gc kept (the bad escape) is the test's own plant: without it, everything is as planted.
      await writeJournal('vms', [{ op: 'omapRm', keys: Object.keys(entries) }]);
      await leftovers.expectUnchanged(planted);
    } finally {
      await c.close();
      // What the test made, whatever happened (the entries gc kept included).
      await writeJournal('vms', [{ op: 'omapRm', keys: Object.keys(entries) }]);
      await rbd(a, ['snap', 'rm', `vms/${disk}@snapstore-${real}`]).catch(() => {});
      await deleteGlanceImage(glance, glanceVictim);
      await removeImage(a, `images/${victim}`);
    }
  }, 60_000);
});
