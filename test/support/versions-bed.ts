// A test bed of one test file's own across Ceph versions (issue 14): cluster `a` runs Ceph 18.2 Reef from
// the trixie root (scripts/ceph-cluster.sh --reef: clone format 2, Reef's own default image features, a
// ceph-mgr), cluster `b` the host's Ceph 16.2 Pacific (clone format 1, the test bed's layering,deep-flatten)
// — a mixed pair as unlike as today's clusters get. Same pools and users as every bed; started before the
// file's tests and stopped by PID after them (own-bed.ts does the bookkeeping the same way).
// Without the trixie root the file's tests FAIL with what is missing (scripts/trixie-root.sh check): they
// are never skipped.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll } from 'vitest';
import { startCluster, stopCluster } from '../../scripts/testbed.mjs';
import { closeAdmins } from './leftovers.js';
import { markStopped } from './own-bed.js';
import type { TestbedEnv } from './testbed.js';

const run = promisify(execFile);
const trixieRoot = join(resolve(dirname(fileURLToPath(import.meta.url)), '..', '..'), 'scripts', 'trixie-root.sh');

/** Throws (failing the file's tests) with what is missing when the Reef root is not there. */
export async function requireTrixieRoot(env: Record<string, string> = {}): Promise<void> {
  try {
    await run('bash', [trixieRoot, 'check'], { env: { ...process.env, ...env } });
  } catch (err) {
    const why = (err as { stderr?: string }).stderr?.trim() || String(err);
    throw new Error(`the Ceph 18 (Reef) tests need the Debian 13 root, which is missing: ${why}`);
  }
}

/**
 * Registers the hooks that start and stop this file's own Reef/Pacific pair; `pacific: false` starts the
 * Reef cluster only (then `b` is absent: the leftovers probe lists `a` alone — use leftoversIn).
 */
export function versionsTestbed(opts: { pacific?: boolean } = {}): TestbedEnv {
  const env = {} as TestbedEnv;
  const pacific = opts.pacific ?? true;
  const root = mkdtempSync(join(tmpdir(), 'versions-bed-'));
  const dirs = { a: join(root, 'reef'), b: join(root, 'pacific') };
  beforeAll(async () => {
    await requireTrixieRoot();
    const [a, b] = await Promise.all([
      startCluster(dirs.a, { reef: true, cloneV2: true, stockFeatures: true, mgr: true }),
      pacific ? startCluster(dirs.b) : null,
    ]);
    Object.assign(env, { root, clusters: b ? { a, b } : { a } });
  }, 300_000);
  afterAll(async () => {
    const confs = [join(dirs.a, 'ceph.conf'), join(dirs.b, 'ceph.conf')];
    for (const c of confs) markStopped(c);
    await closeAdmins(confs);
    await Promise.all([stopCluster(dirs.a), pacific ? stopCluster(dirs.b) : null]);
    rmSync(root, { recursive: true, force: true });
  }, 120_000);
  return env;
}
