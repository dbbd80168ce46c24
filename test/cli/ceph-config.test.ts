// Issue 21 as an operator meets it: the compiled `snapstore` command (npm run build first) with a nova.conf /
// glance-api.conf whose ceph.conf or keyring has one of the commonest mistakes, on the source side and on the
// target side. Each failure has its catalog code and exit status, names the user and the file, shows no key
// (--json, --debug), creates nothing, and `check` lists it as a finding instead of failing.
import { execFile } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { expectNoSecret, makeMistakes, type Mistake } from '../support/ceph-mistakes.js';
import type { Snapshot } from '../support/leftovers.js';
import { ownPools } from '../support/own-pools.js';
import { rbd, testbed, uniqueName } from '../support/testbed.js';

const env = testbed();
const a = env.clusters.a;
const cli = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const { dir, mistakes, secrets } = await makeMistakes(a);
let disk = '';
// The configs name pools of this file's own on cluster a (and, where they work, users of them): the
// leftovers probe lists both pools whole before each case and after it.
const pools = ownPools('cli-mistakes', { clusters: () => [a] });
let before: Snapshot;

beforeAll(async () => {
  disk = uniqueName('cli-mistake-disk');
  await rbd(a, ['create', `${pools.vms}/${disk}`, '--size', '16M']);
});
afterAll(async () => {
  if (disk) await rbd(a, ['rm', '--no-progress', `${pools.vms}/${disk}`]);
  rmSync(dir, { recursive: true, force: true });
});
beforeEach(async () => {
  before = await pools.leftovers.snapshot();
  // The source disk alone, no snapshot, nothing in the trash: what every case must leave.
  expect(before.listing.rbd[a.fsid]).toEqual({
    [pools.images]: { images: {}, trash: [], index: [] },
    [pools.vms]: { images: { [disk]: { snapshots: [], meta: [] } }, trash: [], index: [] },
  });
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function snapstore(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

const novaConf = (name: string, confPath: string, user: string) =>
  file(`nova-${name}.conf`, `[libvirt]\nimages_type = rbd\nimages_rbd_pool = ${pools.vms}\nimages_rbd_ceph_conf = ${confPath}\nrbd_user = ${user}\nrbd_connect_timeout = 2\n`);
const glanceConf = (name: string, confPath: string, user: string) =>
  file(`glance-${name}.conf`, `[glance_store]\ndefault_store = rbd\nrbd_store_pool = ${pools.images}\nrbd_store_user = ${user}\nrbd_store_ceph_conf = ${confPath}\nrados_connect_timeout = 2\n`);
// Made in the cases: the users and their ceph.conf exist once beforeAll has run.
const goodNova = () => novaConf('good', pools.conf(a), pools.nova(a).user);
const goodGlance = () => glanceConf('good', pools.conf(a), pools.glance(a).user);

/** A failed command: exit status, one error (JSON or one human line), user and file named, no key. */
function expectFailure(r: Run, m: Mistake, json: boolean): void {
  expect(r.code, r.stderr + r.stdout).toBe(m.exit);
  expectNoSecret(r.stdout + r.stderr, secrets);
  const named = m.keyring ?? m.confPath;
  if (json) {
    const { error } = JSON.parse(r.stdout) as { error: { code: string; message: string; context: { fix?: string } } };
    expect(error.code).toBe(m.code);
    expect(error.message).toContain(`client.${m.user}`);
    expect(error.message).toContain(named);
    expect(error.context.fix).toBeTruthy();
  } else {
    // --debug: the message line, then the stack.
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(new RegExp(`^snapstore: .*client\\.${m.user}.*\\[${m.code}\\]\\n`));
    expect(r.stderr).toContain(named);
    expect(r.stderr).toMatch(/\n\s+at /);
  }
}

/** `check` (JSON and human) lists the finding for `side` and exits 0 like for its other findings. */
async function expectFinding(args: string[], m: Mistake, side: 'source' | 'target'): Promise<void> {
  const json = await snapstore([...args, '--json']);
  expect(json.code, json.stderr).toBe(0);
  expectNoSecret(json.stdout + json.stderr, secrets);
  const plan = JSON.parse(json.stdout) as { reasons: Array<{ code: string; ok: boolean; message: string; fix?: string }> };
  const finding = plan.reasons.find((r) => r.code === m.code);
  expect(finding).toMatchObject({ ok: false, message: expect.stringMatching(new RegExp(`^the ${side} cluster`)) });
  expect(finding?.message).toContain(`client.${m.user}`);
  expect(finding?.fix).toBeTruthy();
  // The other side connected, and the same run says so.
  expect(plan.reasons).toContainEqual(expect.objectContaining({ code: 'CEPH_CONNECTED', ok: true }));
  const human = await snapstore([...args, '--debug']);
  expect(human.code).toBe(0);
  expect(human.stdout).toMatch(/^method: none: snapstore cannot connect to Ceph/);
  expect(human.stdout).toMatch(new RegExp(`\\n  NO   ${m.code}: the ${side} cluster`));
  expect(human.stdout).toMatch(/\n {8}fix: /);
  expectNoSecret(human.stdout + human.stderr, secrets);
}

/** Both pools as before the case: nothing new, and the source disk untouched (no snapshot, no mark, no trash). */
async function expectNothingCreated(): Promise<void> {
  await pools.leftovers.expectUnchanged(before);
}

describe.each(mistakes)('$what', (m) => {
  it('on the source side (nova.conf): snapshot fails with the code, check lists it', async () => {
    const id = uniqueName('cli-mistake-src');
    const nova = novaConf(`src-${id}`, m.confPath, m.user);
    const cfg = ['--config', nova, '--config', goodGlance()];
    expectFailure(await snapstore(['snapshot', `${pools.vms}/${disk}`, '--image-id', id, ...cfg, '--json']), m, true);
    expectFailure(await snapstore(['snapshot', `${pools.vms}/${disk}`, '--image-id', id, ...cfg, '--debug']), m, false);
    await expectFinding(['check', `${pools.vms}/${disk}`, ...cfg], m, 'source');
    await expectNothingCreated();
  });

  it('on the target side (glance-api.conf): add, get, size, delete and snapshot fail with the code, check lists it', async () => {
    const id = uniqueName('cli-mistake-tgt');
    const glance = glanceConf(`tgt-${id}`, m.confPath, m.user);
    const data = file(`${id}.raw`, 'x'.repeat(4096));
    const location = `rbd://${a.fsid}/${pools.images}/${id}/snap`;
    expectFailure(await snapstore(['add', data, '--image-id', id, '--config', glance, '--json']), m, true);
    expectFailure(await snapstore(['add', data, '--image-id', id, '--config', glance, '--debug']), m, false);
    expectFailure(await snapstore(['get', location, '-o', join(dir, `${id}.out`), '--config', glance, '--json']), m, true);
    expectFailure(await snapstore(['size', location, '--config', glance, '--json']), m, true);
    expectFailure(await snapstore(['delete', location, '--config', glance, '--debug']), m, false);
    const cfg = ['--config', goodNova(), '--config', glance];
    expectFailure(await snapstore(['snapshot', `${pools.vms}/${disk}`, '--image-id', id, ...cfg, '--json']), m, true);
    await expectFinding(['check', `${pools.vms}/${disk}`, ...cfg], m, 'target');
    await expectNothingCreated();
  });
});
