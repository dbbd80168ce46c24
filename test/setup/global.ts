// Starts the test bed once per `vitest run` (two clusters + one glance-api) and always tears it down,
// on success, failure, or Ctrl-C. SNAPSTORE_TESTBED=path/testbed.json reuses a running test bed (left
// running); SNAPSTORE_KEEP_TESTBED=1 leaves the one started here running for debugging.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { down, load, up } from '../../scripts/testbed.mjs';

const scripts = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'scripts');

function stopNow(root: string): void {
  // Signal handlers cannot await: stop synchronously, glance first, by recorded PID.
  const stop = (script: string, dir: string) => {
    try {
      execFileSync('bash', [join(scripts, script), 'stop', dir], { stdio: 'ignore' });
    } catch {
      // Already stopped or never started.
    }
  };
  let extra: string[][] = [];
  try {
    extra = readFileSync(join(root, 'started.txt'), 'utf8').split('\n').filter(Boolean).map((l) => l.split(' ', 2));
  } catch {
    // Nothing extra was started.
  }
  stop('glance-api.sh', join(root, 'glance'));
  for (const [kind, dir] of extra) if (kind === 'glance') stop('glance-api.sh', dir!);
  stop('ceph-cluster.sh', join(root, 'cluster-a'));
  stop('ceph-cluster.sh', join(root, 'cluster-b'));
  for (const [kind, dir] of extra) if (kind === 'cluster') stop('ceph-cluster.sh', dir!);
}

/**
 * cli.test and package.test run the compiled dist/, not src/: a src/ file newer than its dist/ output (or
 * without one) means they would test old code. Returns the offending files, src-relative.
 */
export function staleBuild(root: string): string[] {
  const src = join(root, 'src');
  const stale: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(join(src, dir), { withFileTypes: true })) {
      const rel = join(dir, entry.name);
      if (entry.isDirectory()) walk(rel);
      else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
        const built = join(root, 'dist', rel.replace(/\.ts$/, '.js'));
        let builtAt = 0;
        try {
          builtAt = statSync(built).mtimeMs;
        } catch {
          // Missing counts as stale.
        }
        if (builtAt < statSync(join(src, rel)).mtimeMs) stale.push(rel);
      }
    }
  };
  walk('');
  return stale;
}

export default async function setup(project: TestProject) {
  const stale = staleBuild(join(scripts, '..'));
  if (stale.length > 0) {
    throw new Error(
      `dist/ is older than src/ (${stale.slice(0, 5).join(', ')}${stale.length > 5 ? `, and ${stale.length - 5} more` : ''}): ` +
        'cli.test and package.test run dist/. Run `npm run build` first (`npm test` does).',
    );
  }
  if (process.env.SNAPSTORE_TESTBED) {
    const env = load(process.env.SNAPSTORE_TESTBED);
    // As below: clusters that test files start on their own are recorded under the reused test bed.
    process.env.SNAPSTORE_TESTBED_ROOT = env.root;
    mkdirSync(join(env.root, 'tmp'), { recursive: true });
    process.env.TMPDIR = join(env.root, 'tmp');
    project.provide('testbed', env);
    return;
  }
  const root = process.env.SNAPSTORE_TESTBED_DIR ?? mkdtempSync(join(tmpdir(), 'snapstore-testbed-'));
  const keep = process.env.SNAPSTORE_KEEP_TESTBED === '1';
  const onSignal = (signal: NodeJS.Signals) => {
    if (!keep) stopNow(root);
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const started = Date.now();
  const env = await up(root);
  // Test workers inherit these: what they start themselves is recorded here and stopped by `down`, and
  // their scratch files (os.tmpdir()) live under the test bed, removed with it.
  process.env.SNAPSTORE_TESTBED_ROOT = root;
  const scratch = join(root, 'tmp');
  mkdirSync(scratch, { recursive: true });
  process.env.TMPDIR = scratch;
  console.error(`test bed up in ${((Date.now() - started) / 1000).toFixed(1)} s under ${root}`);
  project.provide('testbed', env);
  return async () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (keep) {
      console.error(`test bed left running: SNAPSTORE_TESTBED=${join(root, 'testbed.json')}`);
      return;
    }
    await down(root);
    rmSync(root, { recursive: true, force: true });
  };
}
