#!/usr/bin/env node
// `npm run demo`: a throwaway cluster and glance-api, an instance disk with data, then what an operator
// would run — `snapstore check` and `snapstore snapshot` with real nova.conf / glance-api.conf — next to
// the nova-style full copy of the same disk. Everything is torn down at the end, whatever happens.
import { execFile, spawn } from 'node:child_process';
import { createReadStream, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startCluster, startGlance, stopCluster, stopGlance } from './testbed.mjs';

const run = promisify(execFile);
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(root, 'dist', 'cli.js');
const DISK_GIB = Number(process.env.DEMO_DISK_GIB ?? 4);
const WRITTEN_MIB = Number(process.env.DEMO_WRITTEN_MIB ?? 512);

const say = (text = '') => process.stdout.write(`${text}\n`);
const seconds = (t0) => (Number(process.hrtime.bigint() - t0) / 1e9).toFixed(2);

function snapstore(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`snapstore ${args[0]} exited ${code}: ${stdout}`))));
  });
}

const dir = mkdtempSync(join(tmpdir(), 'snapstore-demo-'));
let cluster;
let glance;
try {
  say(`snapstore demo — working directory ${dir}`);
  say('starting a one-node Ceph cluster and a glance-api on 127.0.0.1 ...');
  cluster = await startCluster(join(dir, 'ceph'), { cloneV2: true });
  glance = await startGlance(join(dir, 'glance'), cluster.dir);
  say(`  ceph fsid ${cluster.fsid}, glance ${glance.url}`);

  const rbd = (args, user = 'nova') => run('rbd', ['-c', cluster.conf, '--id', user, ...args], { maxBuffer: 1 << 26 });
  say(`creating instance disk vms/instance-0001_disk: ${DISK_GIB} GiB, ${WRITTEN_MIB} MiB written ...`);
  await rbd(['create', 'vms/instance-0001_disk', '--size', `${DISK_GIB}G`]);
  await rbd(['bench', '--io-type', 'write', '--io-size', '4M', '--io-total', `${WRITTEN_MIB}M`, '--io-pattern', 'rand', 'vms/instance-0001_disk']);

  // The operator's files: nova.conf as a compute node has it, and the glance-api.conf Glance runs with.
  const novaConf = join(dir, 'nova.conf');
  writeFileSync(
    novaConf,
    `[libvirt]\nimages_type = rbd\nimages_rbd_pool = vms\nimages_rbd_ceph_conf = ${cluster.conf}\nrbd_user = nova\n` +
      `[glance]\napi_servers = ${glance.url}\n`,
  );
  const configs = ['--config', novaConf, '--config', glance.conf];
  const source = `rbd://${cluster.fsid}/vms/instance-0001_disk`;

  say();
  say(`$ snapstore check ${source} --config nova.conf --config glance-api.conf`);
  process.stdout.write(await snapstore(['check', source, ...configs]));

  say();
  say(`$ snapstore snapshot ${source} --name instance-0001-snap --config nova.conf --config glance-api.conf --json`);
  let t0 = process.hrtime.bigint();
  const result = JSON.parse(await snapstore(['snapshot', source, '--name', 'instance-0001-snap', ...configs, '--json']));
  const direct = seconds(t0);
  say(JSON.stringify(result, null, 2));

  say();
  say('the nova-style full copy of the same disk: rbd export to a local file, then Glance PUT /file ...');
  t0 = process.hrtime.bigint();
  await rbd(['snap', 'create', 'vms/instance-0001_disk@fullcopy']);
  const file = join(dir, 'export.raw');
  await rbd(['export', 'vms/instance-0001_disk@fullcopy', file]);
  const created = await fetch(`${glance.url}/v2/images`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'instance-0001-fullcopy', disk_format: 'raw', container_format: 'bare' }),
  }).then((r) => r.json());
  const put = await fetch(`${glance.url}/v2/images/${created.id}/file`, {
    method: 'PUT',
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(statSync(file).size) },
    body: createReadStream(file),
    duplex: 'half',
  });
  if (put.status !== 204) throw new Error(`Glance upload answered ${put.status}`);
  const full = seconds(t0);
  const exported = statSync(file);
  const localMiB = ((exported.blocks * 512) / 2 ** 20).toFixed(0);
  rmSync(file);
  await rbd(['snap', 'rm', 'vms/instance-0001_disk@fullcopy']);

  say();
  say('| way | seconds | local disk used |');
  say('|---|---|---|');
  say(`| snapstore (${result.method}) | ${direct} | 0 |`);
  say(`| nova-style full copy | ${full} | ${localMiB} MiB (a ${DISK_GIB} GiB file) |`);
  say(`snapstore took ${(Number(direct) / Number(full)).toFixed(3)}x the time of the full copy.`);
} catch (err) {
  process.stderr.write(`demo failed: ${err.message}\n`);
  process.exitCode = 1;
} finally {
  if (glance) await stopGlance(glance.dir).catch(() => {});
  if (cluster) await stopCluster(cluster.dir).catch(() => {});
  rmSync(dir, { recursive: true, force: true });
  say('torn down.');
}
