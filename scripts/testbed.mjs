#!/usr/bin/env node
// The test bed: two independent Ceph clusters (different fsids) and one glance-api on the first, all on
// 127.0.0.1 ports chosen free at start, all state under one directory, described by DIR/testbed.json.
//
//   node scripts/testbed.mjs up [DIR]     start (default DIR: .testbed), print the JSON
//   node scripts/testbed.mjs down [DIR]   stop everything recorded in DIR (by PID)
//
// Cluster `a` allows clone format 2 (require-min-compat-client mimic); cluster `b` only clone format 1.
// The vitest global setup uses the same functions; point SNAPSTORE_TESTBED at a running test bed's
// testbed.json to reuse it across runs while debugging (it is then left running).
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const scripts = dirname(fileURLToPath(import.meta.url));

/** A port nothing listens on right now (the kernel's choice), on 127.0.0.1. */
export async function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

function parseEnv(text) {
  return Object.fromEntries(
    text
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
}

export async function startCluster(dir, { bluestore = false, cloneV2 = false } = {}) {
  const port = await freePort();
  const args = [join(scripts, 'ceph-cluster.sh'), 'start', dir, String(port)];
  if (bluestore) args.push('--bluestore');
  if (cloneV2) args.push('--clone-v2');
  const { stdout } = await run('bash', args, { timeout: 120_000 });
  const env = parseEnv(stdout);
  return { dir, conf: env.conf, fsid: env.fsid, port, cloneFormat: Number(env.clone_format) };
}

export async function stopCluster(dir) {
  await run('bash', [join(scripts, 'ceph-cluster.sh'), 'stop', dir], { timeout: 60_000 });
}

export async function startGlance(dir, cephDir, { multipleLocations = true } = {}) {
  const port = await freePort();
  const args = [join(scripts, 'glance-api.sh'), 'start', dir, String(port), cephDir];
  if (!multipleLocations) args.push('--no-multiple-locations');
  const { stdout } = await run('bash', args, { timeout: 120_000 });
  return { dir, url: parseEnv(stdout).url, conf: join(dir, 'glance-api.conf') };
}

export async function stopGlance(dir) {
  await run('bash', [join(scripts, 'glance-api.sh'), 'stop', dir], { timeout: 60_000 });
}

export async function up(root) {
  root = resolve(root);
  if (existsSync(root)) rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  // Record the directories before starting anything, so `down` finds whatever did start.
  writeFileSync(join(root, 'testbed.json'), JSON.stringify({ root, starting: true }));
  try {
    const [a, b] = await Promise.all([
      startCluster(join(root, 'cluster-a'), { cloneV2: true }),
      startCluster(join(root, 'cluster-b')),
    ]);
    const glance = await startGlance(join(root, 'glance'), a.dir);
    const env = { root, clusters: { a, b }, glance };
    writeFileSync(join(root, 'testbed.json'), JSON.stringify(env, null, 2));
    return env;
  } catch (err) {
    await down(root);
    throw err;
  }
}

export async function down(root) {
  root = resolve(root);
  // Glance first (it holds a client connection), then the clusters; each stop is by recorded PID.
  await stopGlance(join(root, 'glance')).catch(() => {});
  await Promise.all(['cluster-a', 'cluster-b'].map((c) => stopCluster(join(root, c)).catch(() => {})));
}

export function load(file) {
  return JSON.parse(readFileSync(file, 'utf8'));
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [cmd, dir = '.testbed'] = process.argv.slice(2);
  if (cmd === 'up') {
    const env = await up(dir);
    console.log(JSON.stringify(env, null, 2));
    console.error(`test bed running; reuse it with SNAPSTORE_TESTBED=${join(env.root, 'testbed.json')}`);
  } else if (cmd === 'down') {
    await down(dir);
  } else {
    console.error('usage: node scripts/testbed.mjs up|down [DIR]');
    process.exit(2);
  }
}
