// Liveness by lease: a run registers in its pool's journal and renews its lease while it works. gc from
// another host or another PID namespace, with the smallest thresholds it accepts, never touches such a run;
// a killed run's leftovers go once its lease ran out (another host) or at once (provably dead here); the
// thresholds below two lease periods are refused. Short leases (SNAPSTORE_LEASE_SECONDS) keep it quick.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import * as rbdNapi from 'ceph-rbd-napi';
import type { CoordinatorEvent } from '../../src/coordinator/index.js';
import { withFaults } from '../../src/coordinator/faults.js';
import { JOURNAL_OBJECT } from '../../src/coordinator/journal/index.js';
import { testbed, uniqueName } from '../support/testbed.js';
import { coordinator, expectClean, exportMd5, makeDisk, sourceConfig } from './helpers.js';

const LEASE_SECONDS = 6;
process.env.SNAPSTORE_LEASE_SECONDS = String(LEASE_SECONDS);
/** What the CLI accepts at least: two lease periods. */
const MIN_THRESHOLD = 2 * LEASE_SECONDS;
/** Lease plus the clock-skew allowance (half a lease for short leases): after this an unrenewed lease is over. */
const EXPIRY_MS = LEASE_SECONDS * 1500;

const env = testbed();
const a = env.clusters.a;
const here = dirname(fileURLToPath(import.meta.url));
const cli = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const childModule = fileURLToPath(new URL('../../dist/coordinator/index.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'snapstore-lease-'));
const novaConf = join(dir, 'nova.conf');
writeFileSync(novaConf, `[libvirt]\nimages_type = rbd\nimages_rbd_pool = vms\nimages_rbd_ceph_conf = ${a.conf}\nrbd_user = nova\n`);

function fileStoreConf(dataDir: string): string {
  const p = join(dir, `glance-${readdirSync(dir).length}.conf`);
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

/** The run's entry in the vms journal, or undefined. */
async function journalEntry(runId: string): Promise<string | undefined> {
  const c = await rbdNapi.Cluster.connect({ confPath: a.conf, user: 'admin' });
  try {
    const io = await c.openIoctx('vms');
    try {
      return (await rbdNapi.omapGet(io, JOURNAL_OBJECT, [`run.${runId}`])).get(`run.${runId}`)?.toString();
    } finally {
      await io.close();
    }
  } finally {
    await c.close();
  }
}

/** A copy snapshot in a child process (the compiled coordinator), killed with SIGKILL mid-copy. */
async function killedMidCopy(source: string, dataDir: string, extraEnv: Record<string, string>): Promise<string> {
  const args = { options: { source: sourceConfig(a), target: { kind: 'file', dataDir } }, source, snapshot: {}, freezeOnPhase: 'copy' };
  const child: ChildProcess = spawn(process.execPath, [join(here, 'fixtures', 'snapshot-child.mjs'), childModule, JSON.stringify(args)], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, ...extraEnv },
  });
  const runId = await new Promise<string>((resolve, reject) => {
    let id = '';
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const e = JSON.parse(line) as CoordinatorEvent;
      if (e.type === 'run') id = e.runId;
      if (e.type === 'progress' && e.phase === 'copy' && e.done > 0 && e.done < e.total) resolve(id);
    });
    child.on('exit', (code, signal) => reject(new Error(`child exited (${code ?? signal}) before the kill point`)));
  });
  const exited = new Promise((r) => child.on('exit', r));
  child.kill('SIGKILL');
  await exited;
  return runId;
}

describe('a run whose lease is renewed', () => {
  it('is never touched by gc with the smallest thresholds from another host or another PID namespace, and finishes', async () => {
    const disk = uniqueName('lease-live');
    const source = await makeDisk(a, disk, 32, 8);
    const before = await exportMd5(a, `vms/${disk}`);
    const dataDir = mkdtempSync(join(dir, 'live-'));
    let paused!: () => void;
    const reached = new Promise<void>((r) => {
      paused = r;
    });
    let resume!: () => void;
    const gate = new Promise<void>((r) => {
      resume = r;
    });
    // The run holds its snapshot and its pending target while it waits here: a long run, to gc.
    const slow = withFaults({ source: sourceConfig(a), target: { kind: 'file' as const, dataDir } }, async (p) => {
      if (p.step === 'snap-remove' && p.when === 'before') {
        paused();
        await gate;
      }
    });
    const events: CoordinatorEvent[] = [];
    const c = coordinator(slow, events);
    try {
      const run = c.snapshot(source, {});
      run.catch(() => {});
      await reached;
      const runId = events.flatMap((e) => (e.type === 'run' ? [e.runId] : []))[0]!;
      // Longer than a lease and the skew allowance: an entry nobody renewed would be expired by now.
      await sleep(EXPIRY_MS + 1000);

      const gcArgs = ['gc', '--older-than', String(MIN_THRESHOLD), '--config', novaConf, '--config', fileStoreConf(dataDir)];
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
      expect(await journalEntry(runId)).toBeUndefined();
    } finally {
      resume();
      await c.close();
    }
    await expectClean(a, disk, []);
    expect(await exportMd5(a, `vms/${disk}`)).toBe(before);
  }, 120_000);
});

describe('a killed run', () => {
  it('on another host: kept while its lease lasts, everything removed once it ran out', async () => {
    const disk = uniqueName('lease-dead-remote');
    const source = await makeDisk(a, disk, 64, 32);
    const dataDir = mkdtempSync(join(dir, 'remote-'));
    const runId = await killedMidCopy(source, dataDir, { SNAPSTORE_HOST_ID: 'host-that-died' });
    expect(await journalEntry(runId)).toBeDefined();
    const gcArgs = ['gc', '--json', '--older-than', String(MIN_THRESHOLD), '--config', novaConf, '--config', fileStoreConf(dataDir)];

    const early = gcJson(await snapstore(gcArgs));
    expect(early.removed).toEqual([]);
    expect(early.seen.filter((l) => l.runId === runId).map((l) => l.action)).toContain('kept');
    expect(readdirSync(dataDir).length).toBeGreaterThan(0);

    await sleep(EXPIRY_MS + 500);
    const late = gcJson(await snapstore(gcArgs));
    const mine = late.removed.filter((l) => l.runId === runId);
    expect(mine.map((l) => l.kind).sort()).toEqual(['run-record', 'run-record', 'source-snapshot', 'target']);
    expect(late.seen.filter((l) => l.runId === runId).every((l) => l.action === 'removed')).toBe(true);
    expect(readdirSync(dataDir)).toEqual([]);
    expect(await journalEntry(runId)).toBeUndefined();
    await expectClean(a, disk, []);
  }, 120_000);

  it('on this host: provably dead, so gc with its default threshold removes everything at once', async () => {
    const disk = uniqueName('lease-dead-local');
    const source = await makeDisk(a, disk, 64, 32);
    const dataDir = mkdtempSync(join(dir, 'local-'));
    const runId = await killedMidCopy(source, dataDir, {});
    const report = gcJson(await snapstore(['gc', '--json', '--config', novaConf, '--config', fileStoreConf(dataDir)]));
    expect(report.removed.filter((l) => l.runId === runId).map((l) => l.kind).sort()).toEqual(['run-record', 'run-record', 'source-snapshot', 'target']);
    expect(readdirSync(dataDir)).toEqual([]);
    expect(await journalEntry(runId)).toBeUndefined();
    await expectClean(a, disk, []);
  }, 120_000);
});

describe('thresholds', () => {
  it('below two lease periods are refused with USAGE', async () => {
    for (const args of [
      ['gc', '--older-than', String(MIN_THRESHOLD - 1)],
      ['gc', '--older-than', '0'],
      ['flattener', '--once', '--stale-lock-seconds', '0'],
    ]) {
      const r = await snapstore([...args, '--config', novaConf]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`must be at least ${MIN_THRESHOLD} seconds.*\\[USAGE\\]`));
    }
    // With the default lease (60 s) the least is 120 s.
    const r = await snapstore(['gc', '--older-than', '60', '--config', novaConf], { SNAPSTORE_LEASE_SECONDS: '' });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/at least 120 seconds/);
  });
});
