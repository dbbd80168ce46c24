// A real Keystone (scripts/keystone.sh) and a glance-api behind keystonemiddleware (scripts/glance-api.sh
// --keystone) of a test file's own, on the shared test bed's cluster a; and what tests do as Keystone's
// admin (application credentials, revoking tokens, taking the image endpoints out of the catalog).
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Agent, type Dispatcher } from 'undici';
import { createServer } from 'node:net';
import type { Scope } from '../support/leftovers.js';
import type { OwnPools } from '../support/own-pools.js';
import { rbd, rbdJson, type ClusterInfo } from '../support/testbed.js';

const run = promisify(execFile);
const scripts = fileURLToPath(new URL('../../scripts/', import.meta.url));

export interface KeystoneBed {
  dir: string;
  /** Keystone's URL (without /v3). */
  url: string;
  /** keystone.env: admin_password, member_password, member_id, glance_password, nova_password, *_project_id, image_*_endpoint_id. */
  env: Record<string, string>;
  glanceUrl: string;
  /** glance-api.conf of this Glance (its [glance_store] is the CLI's target). */
  glanceConf: string;
}

/** A port nothing listens on right now (the kernel's pick), for Glance and for "Keystone is down". */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

function parseEnv(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) env[line.slice(0, i)] = line.slice(i + 1);
  }
  return env;
}

/**
 * keystone.sh start, tried a second time in a fresh directory when the first fails: on this shared
 * two-core machine uwsgi has been seen to drop connections while Keystone is provisioned. The first
 * failure is printed, not hidden.
 */
async function startKeystone(dir: string, imageUrl: string, tokenExpiration: number | undefined): Promise<void> {
  const args = ['start', dir, '--image-url', imageUrl];
  if (tokenExpiration !== undefined) args.push('--token-expiration', String(tokenExpiration));
  const start = () => run('bash', [join(scripts, 'keystone.sh'), ...args], { timeout: 180_000 });
  try {
    await start();
  } catch (err) {
    console.warn(`keystone.sh start failed once, trying again: ${(err as { stderr?: string }).stderr ?? String(err)}`);
    await run('bash', [join(scripts, 'keystone.sh'), 'stop', dir]);
    await rm(dir, { recursive: true, force: true });
    await start();
  }
}

/**
 * Starts Keystone, then Glance behind it (the catalog's `image` endpoints point at it), storing into the
 * test file's own `pools` (own-pools.ts) as their glance user: the file's leftovers probe lists them whole.
 */
export async function startKeystoneBed(
  cluster: ClusterInfo,
  pools: OwnPools,
  opts: { tokenExpiration?: number; glanceArgs?: string[] } = {},
): Promise<KeystoneBed> {
  const dir = await mkdtemp(join(tmpdir(), 'snapstore-keystone-'));
  const glancePort = await freePort();
  const glanceUrl = `http://127.0.0.1:${glancePort}`;
  const bed = { dir } as KeystoneBed;
  try {
    await startKeystone(join(dir, 'keystone'), glanceUrl, opts.tokenExpiration);
    bed.env = parseEnv(await readFile(join(dir, 'keystone', 'keystone.env'), 'utf8'));
    bed.url = bed.env.url ?? '';
    // glanceArgs: more glance-api.sh options (--trixie for Glance 30, --size-cap, --multi-store ...).
    const own = ['--pool', pools.images, '--user', pools.glance(cluster).user, '--ceph-conf', pools.conf(cluster), ...(opts.glanceArgs ?? [])];
    await run('bash', [join(scripts, 'glance-api.sh'), 'start', join(dir, 'glance'), String(glancePort), cluster.dir, '--keystone', bed.url, ...own], {
      env: { ...process.env, GLANCE_KEYSTONE_PASSWORD: bed.env.glance_password ?? '' },
      timeout: 180_000,
    });
    bed.glanceUrl = glanceUrl;
    bed.glanceConf = join(dir, 'glance', 'glance-api.conf');
    return bed;
  } catch (err) {
    await stopKeystoneBed(bed);
    throw err;
  }
}

/** Stops what startKeystoneBed started (each by the PID its script recorded) and removes its directory. */
export async function stopKeystoneBed(bed: Pick<KeystoneBed, 'dir'> | undefined): Promise<void> {
  if (!bed?.dir) return;
  await run('bash', [join(scripts, 'glance-api.sh'), 'stop', join(bed.dir, 'glance')]).catch(() => undefined);
  await run('bash', [join(scripts, 'keystone.sh'), 'stop', join(bed.dir, 'keystone')]).catch(() => undefined);
  await rm(bed.dir, { recursive: true, force: true });
}

async function call(bed: KeystoneBed, method: string, path: string, opts: { token?: string; body?: unknown; subject?: string } = {}): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (opts.token) headers['x-auth-token'] = opts.token;
  if (opts.subject) headers['x-subject-token'] = opts.subject;
  const send = () => fetch(`${bed.url}/v3${path}`, { method, headers, ...(opts.body ? { body: JSON.stringify(opts.body) } : {}) });
  // uwsgi has been seen to close a connection without an answer under load; nothing was done then.
  const res = await send().catch((err: unknown) => {
    if ((err as { cause?: { code?: string } }).cause?.code !== 'UND_ERR_SOCKET') throw err;
    return send();
  });
  if (res.status >= 400) throw new Error(`keystone ${method} ${path}: ${res.status} ${await res.text()}`);
  return res;
}

/** A project-scoped token for a user of keystone.sh (`admin` in project admin, others as provisioned). */
export async function userToken(bed: KeystoneBed, user: 'admin' | 'member' | 'nova' | 'glance'): Promise<string> {
  const project = user === 'admin' ? 'admin' : user === 'member' ? 'demo' : 'service';
  const res = await call(bed, 'POST', '/auth/tokens', {
    body: {
      auth: {
        identity: { methods: ['password'], password: { user: { name: user, domain: { id: 'default' }, password: bed.env[`${user}_password`] } } },
        scope: { project: { name: project, domain: { id: 'default' } } },
      },
    },
  });
  return res.headers.get('x-subject-token') ?? '';
}

/** An application credential of the member (scoped to project demo): its id and secret. */
export async function applicationCredential(bed: KeystoneBed, name: string): Promise<{ id: string; secret: string }> {
  const token = await userToken(bed, 'member');
  const res = await call(bed, 'POST', `/users/${bed.env.member_id}/application_credentials`, { token, body: { application_credential: { name } } });
  const body = (await res.json()) as { application_credential: { id: string; secret: string } };
  return { id: body.application_credential.id, secret: body.application_credential.secret };
}

/** Revokes a token (Glance's keystonemiddleware then answers 401 to it: it caches no validation). */
export async function revokeToken(bed: KeystoneBed, token: string): Promise<void> {
  await call(bed, 'DELETE', '/auth/tokens', { token: await userToken(bed, 'admin'), subject: token });
}

/** Takes the image endpoints out of the catalog (enabled false), or puts them back. */
export async function setImageEndpoints(bed: KeystoneBed, enabled: boolean): Promise<void> {
  const token = await userToken(bed, 'admin');
  for (const key of ['image_public_endpoint_id', 'image_internal_endpoint_id']) {
    await call(bed, 'PATCH', `/endpoints/${bed.env[key]}`, { token, body: { endpoint: { enabled } } });
  }
}

/** A Glance request as Keystone's admin, once more with a new token when Glance answers 401: with tokens
 *  of a few seconds on a loaded machine, one may expire before Glance has checked it. */
async function asAdmin(bed: KeystoneBed, path: string, method = 'GET'): Promise<Response> {
  const send = async () => fetch(`${bed.glanceUrl}${path}`, { method, headers: { 'x-auth-token': await userToken(bed, 'admin') } });
  const res = await send();
  return res.status === 401 ? send() : res;
}

/** The leftovers probe's scope addition for this bed's Glance: its whole image list, as Keystone's admin sees it. */
export function glanceOf(bed: KeystoneBed): Partial<Scope> {
  return { glance: [bed.glanceUrl], glanceToken: () => userToken(bed, 'admin') };
}

/** The image as Keystone's admin sees it in this Glance, or null when there is none with that id. */
export async function glanceImage(bed: KeystoneBed, id: string): Promise<Record<string, unknown> | null> {
  const res = await asAdmin(bed, `/v2/images/${id}`);
  if (res.status === 404) return null;
  if (res.status !== 200) throw new Error(`glance GET image ${id}: ${res.status}`);
  return (await res.json()) as Record<string, unknown>;
}

export async function deleteGlanceImage(bed: KeystoneBed, id: string): Promise<void> {
  const res = await asAdmin(bed, `/v2/images/${id}`, 'DELETE');
  if (res.status !== 204 && res.status !== 404) throw new Error(`glance DELETE image ${id}: ${res.status}`);
}

export interface SentRequest {
  method: string;
  path: string;
  token: string | undefined;
  serviceToken: string | undefined;
}

/** A dispatcher that records each request's method, path and auth headers (to see what reached Glance). */
export function recordingDispatcher(): { dispatcher: Dispatcher; sent: SentRequest[]; close: () => Promise<void> } {
  const agent = new Agent();
  const sent: SentRequest[] = [];
  const header = (headers: unknown, name: string): string | undefined => {
    if (!headers || typeof headers !== 'object') return undefined;
    const value = (headers as Record<string, unknown>)[name];
    return typeof value === 'string' ? value : undefined;
  };
  const dispatcher = agent.compose((dispatch) => (opts, handler) => {
    sent.push({
      method: String(opts.method),
      path: String(opts.path),
      token: header(opts.headers, 'x-auth-token'),
      serviceToken: header(opts.headers, 'x-service-token'),
    });
    return dispatch(opts, handler);
  });
  return { dispatcher, sent, close: () => agent.close() };
}

/** A disk `<own vms>/<name>` (made as admin, as an operator would); returns its rbd:// source string. */
export async function makeOwnDisk(pools: OwnPools, cluster: ClusterInfo, name: string, sizeMiB: number): Promise<string> {
  await rbd(cluster, ['create', `${pools.vms}/${name}`, '--size', `${sizeMiB}M`]);
  return `rbd://${cluster.fsid}/${pools.vms}/${name}`;
}

/** The snapshots of `<pool>/<disk>`, trash namespace included (a run leaves none behind). */
export async function diskSnapshots(cluster: ClusterInfo, pool: string, disk: string): Promise<string[]> {
  return (await rbdJson<Array<{ name: string }>>(cluster, ['snap', 'ls', '--all', `${pool}/${disk}`])).map((s) => s.name);
}
