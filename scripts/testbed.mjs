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

// Typed with JSDoc and checked by `npm run typecheck` (scripts/tsconfig.json); testbed.d.mts is generated
// from this file (`npm run types:scripts`) and the typecheck fails when it differs.

/**
 * @typedef {object} ClusterInfo
 * @property {string} dir Directory holding the cluster's state, keyrings and ceph.conf.
 * @property {string} conf Path of the cluster's ceph.conf (every user's keyring is referenced from it).
 * @property {string} fsid
 * @property {number} port The mon's v2 port on 127.0.0.1.
 * @property {1 | 2} cloneFormat 2 when the cluster requires mimic clients (clone format 2 possible), else 1.
 * @property {'pacific' | 'reef'} [release] The Ceph the daemons run: the host's 16.2, or 18.2 from the trixie root (absent: pacific).
 */
/**
 * @typedef {object} GlanceInfo
 * @property {string} dir
 * @property {string} url
 * @property {string} conf
 */
/**
 * @typedef {object} TestbedEnv
 * @property {string} root
 * @property {{ a: ClusterInfo, b: ClusterInfo }} clusters
 * @property {GlanceInfo} glance
 */

const run = promisify(execFile);
const scripts = dirname(fileURLToPath(import.meta.url));

/**
 * A port nothing listens on right now (the kernel's choice), on 127.0.0.1.
 * @returns {Promise<number>}
 */
export async function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
      server.close(() => resolvePort(port));
    });
  });
}

/**
 * The `key=value` lines a start script prints; a missing key is an error naming the script.
 * @param {string} text
 * @param {string} what the script, for the error
 */
function parseEnv(text, what) {
  /** @type {Record<string, string>} */
  const env = Object.fromEntries(
    text
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  /** @param {string} key @returns {string} */
  return (key) => {
    const value = env[key];
    if (value === undefined) throw new Error(`${what} printed no ${key}=`);
    return value;
  };
}

// Clusters and Glance APIs that tests start on their own are recorded in the test bed's directory, so
// `down` stops them even when the test that started them was cut off (a timeout) before its cleanup.
/** @param {'cluster' | 'glance'} kind @param {string} dir */
function register(kind, dir) {
  const root = process.env.SNAPSTORE_TESTBED_ROOT;
  if (root && existsSync(root)) appendFileSync(join(root, 'started.txt'), `${kind} ${resolve(dir)}\n`);
}

/**
 * After a start: the daemons' PIDs, so `down` can stop them even if their directory was deleted.
 * @param {string} dir @param {string[]} pidfiles relative to dir
 */
function registerPids(dir, pidfiles) {
  const root = process.env.SNAPSTORE_TESTBED_ROOT;
  if (!root || !existsSync(root)) return;
  for (const f of pidfiles) {
    const file = join(dir, f);
    if (existsSync(file)) appendFileSync(join(root, 'started.txt'), `pid ${readFileSync(file, 'utf8').trim()} ${resolve(dir)}\n`);
  }
}

/**
 * Stops a recorded daemon by PID, but only while it still runs from that directory (PIDs get reused).
 * @param {string} pid @param {string} dir
 */
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

/**
 * What tests started beside the test bed (the `cluster DIR`, `glance DIR` and `pid PID DIR` lines).
 * @param {string} root
 * @returns {{ glances: string[], clusters: string[], pids: Array<[pid: string, dir: string]> }}
 */
function registered(root) {
  /** @type {ReturnType<typeof registered>} */
  const found = { glances: [], clusters: [], pids: [] };
  const file = join(root, 'started.txt');
  if (!existsSync(file)) return found;
  for (const line of readFileSync(file, 'utf8').split('\n').filter(Boolean)) {
    const [kind, a = '', b = ''] = line.split(' ');
    if (kind === 'glance') found.glances.push(a);
    else if (kind === 'cluster') found.clusters.push(a);
    else if (kind === 'pid') found.pids.push([a, b]);
  }
  return found;
}

/**
 * Starts a one-node cluster under `dir` (scripts/ceph-cluster.sh) on a free port.
 * @param {string} dir
 * @param {{ bluestore?: boolean, cloneV2?: boolean, stockFeatures?: boolean, reef?: boolean, mgr?: boolean }} [opts]
 *   reef: daemons from the trixie root (Ceph 18.2), scripts/trixie-root.sh; mgr: with a ceph-mgr
 * @returns {Promise<ClusterInfo>}
 */
export async function startCluster(dir, { bluestore = false, cloneV2 = false, stockFeatures = false, reef = false, mgr = false } = {}) {
  register('cluster', dir);
  const port = await freePort();
  const args = [join(scripts, 'ceph-cluster.sh'), 'start', dir, String(port)];
  if (bluestore) args.push('--bluestore');
  if (cloneV2) args.push('--clone-v2');
  if (stockFeatures) args.push('--stock-features');
  if (reef) args.push('--reef');
  if (mgr) args.push('--mgr');
  // With a mgr the script waits up to 120 s for its rbd_support module.
  const { stdout } = await run('bash', args, { timeout: mgr ? 240_000 : 120_000 });
  registerPids(dir, ['run/osd.0.pid', 'run/mon.a.pid', 'run/mgr.x.pid']);
  const env = parseEnv(stdout, 'ceph-cluster.sh start');
  const cloneFormat = env('clone_format') === '2' ? 2 : 1;
  const release = env('release') === 'reef' ? 'reef' : 'pacific';
  return { dir, conf: env('conf'), fsid: env('fsid'), port, cloneFormat, release };
}

/** @param {string} dir @returns {Promise<void>} */
export async function stopCluster(dir) {
  await run('bash', [join(scripts, 'ceph-cluster.sh'), 'stop', dir], { timeout: 60_000 });
}

/**
 * Starts a glance-api under `dir` on a free port, storing into the cluster under `cephDir`.
 * @param {string} dir
 * @param {string} cephDir
 * @param {{ multipleLocations?: boolean, sizeCap?: number, multiStore?: boolean, pool?: string, user?: string, cephConf?: string }} [opts]
 *   sizeCap: glance's image_size_cap in bytes; multiStore: enabled_backends with an rbd and a file store;
 *   pool/user/cephConf: the rbd store's pool, cephx user and ceph.conf (a test's own pools, own-pools.ts;
 *   defaults `images`, `glance`, cephDir/ceph.conf)
 * @returns {Promise<GlanceInfo>}
 */
export async function startGlance(dir, cephDir, { multipleLocations = true, sizeCap, multiStore = false, pool, user, cephConf } = {}) {
  register('glance', dir);
  const port = await freePort();
  const args = [join(scripts, 'glance-api.sh'), 'start', dir, String(port), cephDir];
  if (!multipleLocations) args.push('--no-multiple-locations');
  if (sizeCap !== undefined) args.push('--size-cap', String(sizeCap));
  if (multiStore) args.push('--multi-store');
  if (pool !== undefined) args.push('--pool', pool);
  if (user !== undefined) args.push('--user', user);
  if (cephConf !== undefined) args.push('--ceph-conf', cephConf);
  const { stdout } = await run('bash', args, { timeout: 120_000 });
  registerPids(dir, ['glance-api.pid']);
  return { dir, url: parseEnv(stdout, 'glance-api.sh start')('url'), conf: join(dir, 'glance-api.conf') };
}

/** @param {string} dir @returns {Promise<void>} */
export async function stopGlance(dir) {
  await run('bash', [join(scripts, 'glance-api.sh'), 'stop', dir], { timeout: 60_000 });
}

/**
 * Starts the whole test bed under `root` (emptied first) and writes root/testbed.json.
 * @param {string} root
 * @returns {Promise<TestbedEnv>}
 */
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

/**
 * Stops everything recorded under `root`, by PID.
 * @param {string} root
 * @returns {Promise<void>}
 */
export async function down(root) {
  root = resolve(root);
  // Glance first (it holds a client connection), then the clusters; each stop is by recorded PID.
  const extra = registered(root);
  const glances = [join(root, 'glance'), ...extra.glances];
  const clusters = [join(root, 'cluster-a'), join(root, 'cluster-b'), ...extra.clusters];
  await Promise.all(glances.map((d) => stopGlance(d).catch(() => {})));
  await Promise.all(clusters.map((d) => stopCluster(d).catch(() => {})));
  // Whatever is still running from a directory a test removed before stopping it.
  for (const [pid, dir] of extra.pids) stopPid(pid, dir);
}

/**
 * A running test bed's description (its testbed.json).
 * @param {string} file
 * @returns {TestbedEnv}
 */
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
