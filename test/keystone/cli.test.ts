// The snapstore command authenticating as OpenStack tools do, against a real Keystone and a glance-api
// behind keystonemiddleware of this file's own: credentials from clouds.yaml (+ secure.yaml), the OS_*
// password and application credential variables and nova.conf [glance], Glance found in the catalog; the
// service token from [service_user]; bad credentials, an unknown project, a catalog without `image` and a
// Keystone that is down each end in one line with nothing created, and no output holds a secret.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ownPools } from '../support/own-pools.js';
import { testbed, uniqueName } from '../support/testbed.js';
import {
  applicationCredential,
  deleteGlanceImage,
  diskSnapshots,
  freePort,
  glanceImage,
  makeOwnDisk,
  setImageEndpoints,
  startKeystoneBed,
  stopKeystoneBed,
  glanceOf,
  type KeystoneBed,
} from './helpers.js';

const a = testbed().clusters.a;
// Disks and Glance's store in pools of this file's own, as users restricted to them: the leftovers probe
// lists both pools whole before and after a run (the shared `images`/`vms` change under other files).
const pools = ownPools('ks-cli', { clusters: () => [a] });
const cli = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'snapstore-keystone-cli-'));
let bed: KeystoneBed | undefined;
/** Every stdout and stderr of this file's runs, searched for secrets at the end. */
const outputs: string[] = [];
/** Every secret this file handed out. */
const secrets: string[] = [];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The command with only the given OS_* variables (none of the caller's), HOME in this file's directory. */
function snapstore(args: string[], env: Record<string, string> = {}, cwd = dir): Promise<Run> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OS_') && k !== 'XDG_CONFIG_HOME'));
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { env: { ...base, HOME: dir, ...env }, cwd, maxBuffer: 1 << 26 }, (err, stdout, stderr) => {
      outputs.push(stdout, stderr);
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

function ks(): KeystoneBed {
  if (!bed) throw new Error('no keystone bed');
  return bed;
}

function file(name: string, text: string, where = dir): string {
  const p = join(where, name);
  writeFileSync(p, text);
  return p;
}

const libvirt = () => `[libvirt]\nimages_rbd_pool = ${pools.vms}\nimages_rbd_ceph_conf = ${pools.conf(a)}\nrbd_user = ${pools.nova(a).user}\n`;

function memberEnv(overrides: Record<string, string> = {}): Record<string, string> {
  const b = ks();
  return {
    OS_AUTH_URL: `${b.url}/v3`,
    OS_USERNAME: 'member',
    OS_PASSWORD: b.env.member_password ?? '',
    OS_PROJECT_NAME: 'demo',
    OS_USER_DOMAIN_NAME: 'Default',
    OS_PROJECT_DOMAIN_NAME: 'Default',
    ...overrides,
  };
}

beforeAll(async () => {
  bed = await startKeystoneBed(a, pools);
  for (const key of ['admin_password', 'member_password', 'nova_password', 'glance_password']) secrets.push(bed.env[key] ?? '');
}, 240_000);

afterAll(async () => {
  await stopKeystoneBed(bed);
  rmSync(dir, { recursive: true, force: true });
});

/** `check` names the source and the catalog's endpoint; a snapshot registers in Glance, owned by project demo. */
async function registersWith(source: string, env: Record<string, string>, nova: string, cwd = dir): Promise<string> {
  const b = ks();
  const name = uniqueName('ks-cli');
  const disk = await makeOwnDisk(pools, a, name, 16);
  const before = await pools.leftovers.snapshot(glanceOf(b));
  const cfg = ['--config', nova, '--config', b.glanceConf];
  const check = await snapstore(['check', disk, ...cfg], env, cwd);
  expect(check.stderr).toBe('');
  expect(check.code).toBe(0);
  expect(check.stdout).toContain(`glance: ${b.glanceUrl} (from the Keystone service catalog)`);
  expect(check.stdout).toContain(`credentials: ${source}`);
  const json = await snapstore(['check', disk, ...cfg, '--json'], env, cwd);
  expect(JSON.parse(json.stdout)).toMatchObject({ glance: { endpoint: b.glanceUrl, endpointFrom: 'catalog', credentials: source } });
  const r = await snapstore(['snapshot', disk, '--mode', 'direct', ...cfg, '--json'], env, cwd);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  const result = JSON.parse(r.stdout) as { imageId: string; glance: { id: string; status: string } };
  try {
    expect(result.glance.status).toBe('active');
    const image = await glanceImage(b, result.glance.id);
    expect(image).toMatchObject({ status: 'active', owner: b.env.demo_project_id });
  } finally {
    await deleteGlanceImage(b, result.glance.id);
  }
  await pools.leftovers.expectUnchanged(before);
  return check.stdout;
}

describe.sequential('snapstore authenticating with Keystone', () => {
  it('registers with credentials from clouds.yaml (OS_CLOUD, secure.yaml merged), Glance from the catalog', async () => {
    const b = ks();
    const cwd = join(dir, 'clouds');
    mkdirSync(cwd, { recursive: true });
    const clouds = file('clouds.yaml', `clouds:\n  kstest:\n    auth:\n      auth_url: ${b.url}\n      username: member\n      project_name: demo\n      user_domain_name: Default\n      project_domain_name: Default\n    region_name: RegionOne\n    interface: public\n    identity_api_version: 3\n`, cwd);
    const secure = file('secure.yaml', `clouds:\n  kstest:\n    auth:\n      password: ${b.env.member_password}\n`, cwd);
    const nova = file('nova-libvirt.conf', libvirt());
    await registersWith(`clouds.yaml cloud "kstest" (${clouds} + ${secure})`, { OS_CLOUD: 'kstest' }, nova, cwd);
  });

  it('registers with the OS_* password variables', async () => {
    await registersWith('the OS_* environment variables', memberEnv(), file('nova-libvirt.conf', libvirt()));
  });

  it('registers with an application credential from the OS_* variables', async () => {
    const cred = await applicationCredential(ks(), uniqueName('snapstore'));
    secrets.push(cred.secret);
    const env = {
      OS_AUTH_TYPE: 'v3applicationcredential',
      OS_AUTH_URL: ks().url,
      OS_APPLICATION_CREDENTIAL_ID: cred.id,
      OS_APPLICATION_CREDENTIAL_SECRET: cred.secret,
    };
    await registersWith('the OS_* environment variables', env, file('nova-libvirt.conf', libvirt()));
  });

  it('registers with nova.conf [glance] keystoneauth options, sending the [service_user] token that Glance checks', async () => {
    const b = ks();
    const glance = `[glance]\nauth_type = password\nauth_url = ${b.url}\nusername = member\npassword = ${b.env.member_password}\nproject_name = demo\nuser_domain_name = Default\nproject_domain_name = Default\nvalid_interfaces = internal\nregion_name = RegionOne\n`;
    const service = (user: string, password: string, project: string) =>
      `[service_user]\nsend_service_user_token = True\nauth_type = password\nauth_url = ${b.url}\nusername = ${user}\npassword = ${password}\nproject_name = ${project}\nuser_domain_name = Default\nproject_domain_name = Default\n`;
    const plain = file('nova-glance.conf', libvirt() + glance);
    await registersWith(`[glance] of ${plain}`, {}, plain);

    const nova = file('nova-service.conf', libvirt() + glance + service('nova', b.env.nova_password ?? '', 'service'));
    const said = await registersWith(`[glance] of ${nova}`, {}, nova);
    expect(said).toContain(`service token: from [service_user] of ${nova} (sent with location calls)`);

    // Glance's middleware requires the service role of a service token: the member's is refused, so the
    // location is not registered, and the run removes what it made.
    const wrong = file('nova-wrong-service.conf', libvirt() + glance + service('member', b.env.member_password ?? '', 'demo'));
    const name = uniqueName('ks-nosvc');
    const disk = await makeOwnDisk(pools, a, name, 16);
    const before = await pools.leftovers.snapshot(glanceOf(b));
    const id = uniqueName('ks-nosvc-img');
    const r = await snapstore(['snapshot', disk, '--mode', 'direct', '--image-id', id, '--config', wrong, '--config', b.glanceConf]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/401/);
    expect(await glanceImage(b, id)).toBeNull();
    await pools.leftovers.expectUnchanged(before);
  });

  /** A failure of `snapshot` in human, --json and --debug form: one line, `code`, nothing created. */
  async function failsCleanly(env: Record<string, string>, exit: 1 | 2, code: string, says: RegExp): Promise<void> {
    const b = ks();
    const diskName = uniqueName('ks-fail');
    const disk = await makeOwnDisk(pools, a, diskName, 16);
    const before = await pools.leftovers.snapshot(glanceOf(b));
    const nova = file('nova-libvirt.conf', libvirt());
    for (const extra of [[], ['--json'], ['--debug']]) {
      const id = uniqueName('ks-fail-img');
      const r = await snapstore(['snapshot', disk, '--image-id', id, '--config', nova, '--config', b.glanceConf, ...extra], env);
      expect(r.code).toBe(exit);
      if (extra[0] === '--json') {
        expect(r.stderr).toBe('');
        const body = JSON.parse(r.stdout) as { error: { code: string; message: string } };
        expect(body.error.code).toBe(code);
        expect(body.error.message).toMatch(says);
      } else {
        expect(r.stdout).toBe('');
        const first = r.stderr.split('\n')[0] ?? '';
        expect(first).toMatch(new RegExp(`^snapstore: .*\\[${code}\\]$`));
        expect(first).toMatch(says);
        if (extra.length === 0) expect(r.stderr.trim().split('\n')).toHaveLength(1);
      }
      expect(await glanceImage(b, id)).toBeNull();
      await pools.leftovers.expectUnchanged(before);
    }
    expect(await diskSnapshots(a, pools.vms, diskName)).toEqual([]);
  }

  it('fails a wrong password with KEYSTONE_AUTH (exit 2) naming the source', async () => {
    const wrong = `wrong-${uniqueName('pw')}`;
    secrets.push(wrong);
    await failsCleanly(memberEnv({ OS_PASSWORD: wrong }), 2, 'KEYSTONE_AUTH', /refused the credentials from the OS_\* environment variables \(user "member", project "demo"\)/);
  });

  it('fails an unknown project with KEYSTONE_AUTH (exit 2)', async () => {
    await failsCleanly(memberEnv({ OS_PROJECT_NAME: 'no-such-project' }), 2, 'KEYSTONE_AUTH', /project "no-such-project"/);
  });

  it('fails a catalog without an image endpoint with KEYSTONE_NO_ENDPOINT (exit 2)', async () => {
    await setImageEndpoints(ks(), false);
    try {
      await failsCleanly(memberEnv(), 2, 'KEYSTONE_NO_ENDPOINT', /has no "image" service \(it lists: identity\)/);
    } finally {
      await setImageEndpoints(ks(), true);
    }
  });

  it('fails a Keystone that is down with KEYSTONE_UNREACHABLE (exit 1)', async () => {
    const port = await freePort();
    await failsCleanly(memberEnv({ OS_AUTH_URL: `http://127.0.0.1:${port}/v3` }), 1, 'KEYSTONE_UNREACHABLE', /could not be reached \(ECONNREFUSED/);
  });

  it('printed no password, secret or token in any output', () => {
    expect(outputs.length).toBeGreaterThan(20);
    const all = outputs.join('\n');
    for (const s of secrets.filter((x) => x.length >= 8)) expect(all).not.toContain(s);
    // Fernet tokens start with gAAAAA (their version byte and timestamp, base64url).
    expect(all).not.toMatch(/gAAAAA[A-Za-z0-9_-]{20,}/);
  });
});
