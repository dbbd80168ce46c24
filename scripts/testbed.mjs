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
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

// Clusters and Glance APIs that tests start on their own are recorded in the test bed's directory, so
// `down` stops them even when the test that started them was cut off (a timeout) before its cleanup.
function register(kind, dir) {
  const root = process.env.SNAPSTORE_TESTBED_ROOT;
  if (root && existsSync(root)) appendFileSync(join(root, 'started.txt'), `${kind} ${resolve(dir)}\n`);
}

/** After a start: the daemons' PIDs, so `down` can stop them even if their directory was deleted. */
function registerPids(dir, pidfiles) {
  const root = process.env.SNAPSTORE_TESTBED_ROOT;
  if (!root || !existsSync(root)) return;
  for (const f of pidfiles) {
    const file = join(dir, f);
    if (existsSync(file)) appendFileSync(join(root, 'started.txt'), `pid ${readFileSync(file, 'utf8').trim()} ${resolve(dir)}\n`);
  }
}

/** Stops a recorded daemon by PID, but only while it still runs from that directory (PIDs get reused). */
function stopPid(pid, dir) {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (!cmdline.includes(dir)) return;
    process.kill(-Number(pid), 'SIGKILL');
  } catch {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
}

function registered(root) {
  const file = join(root, 'started.txt');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => l.split(' '));
}

export async function startCluster(dir, { bluestore = false, cloneV2 = false, stockFeatures = false } = {}) {
  register('cluster', dir);
  const port = await freePort();
  const args = [join(scripts, 'ceph-cluster.sh'), 'start', dir, String(port)];
  if (bluestore) args.push('--bluestore');
  if (cloneV2) args.push('--clone-v2');
  if (stockFeatures) args.push('--stock-features');
  const { stdout } = await run('bash', args, { timeout: 120_000 });
  registerPids(dir, ['run/osd.0.pid', 'run/mon.a.pid']);
  const env = parseEnv(stdout);
  return { dir, conf: env.conf, fsid: env.fsid, port, cloneFormat: Number(env.clone_format) };
}

export async function stopCluster(dir) {
  await run('bash', [join(scripts, 'ceph-cluster.sh'), 'stop', dir], { timeout: 60_000 });
}

export async function startGlance(dir, cephDir, { multipleLocations = true, sizeCap, multiStore = false } = {}) {
  register('glance', dir);
  const port = await freePort();
  const args = [join(scripts, 'glance-api.sh'), 'start', dir, String(port), cephDir];
  if (!multipleLocations) args.push('--no-multiple-locations');
  if (sizeCap !== undefined) args.push('--size-cap', String(sizeCap));
  if (multiStore) args.push('--multi-store');
  const { stdout } = await run('bash', args, { timeout: 120_000 });
  registerPids(dir, ['glance-api.pid']);
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
  const extra = registered(root);
  const glances = [join(root, 'glance'), ...extra.filter(([k]) => k === 'glance').map(([, d]) => d)];
  const clusters = [join(root, 'cluster-a'), join(root, 'cluster-b'), ...extra.filter(([k]) => k === 'cluster').map(([, d]) => d)];
  await Promise.all(glances.map((d) => stopGlance(d).catch(() => {})));
  await Promise.all(clusters.map((d) => stopCluster(d).catch(() => {})));
  // Whatever is still running from a directory a test removed before stopping it.
  for (const [, pid, dir] of extra.filter(([k]) => k === 'pid')) stopPid(pid, dir);
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
