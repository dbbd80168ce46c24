// Shared by the Glance 30 tests: the Debian 13 root made (or a failure naming what is missing — never a
// skip), a real Keystone with Glance 30 (image API 2.17) behind it on pools of the file's own, disks of
// known content, and waiting for Glance's background hashing.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { GlanceClient } from '../../src/glance/index.js';
import { glanceImage, userToken, type KeystoneBed } from '../keystone/helpers.js';
import type { OwnPools } from '../support/own-pools.js';
import { rbd, type ClusterInfo } from '../support/testbed.js';

const run = promisify(execFile);
const rootScript = fileURLToPath(new URL('../../scripts/trixie-root.sh', import.meta.url));

/**
 * Makes the trixie root when it is not made yet (~1 min debootstrap + ~2.5 min packages, once per machine;
 * a no-op afterwards). When it cannot be made, throws with what is missing (trixie-root.sh says which).
 */
export async function ensureTrixieRoot(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  try {
    await run('bash', [rootScript, 'ensure'], { timeout: 900_000, env });
  } catch (err) {
    const said = (err as { stderr?: string }).stderr?.trim();
    const check = await run('bash', [rootScript, 'check'], { env }).then(
      () => '',
      (e: { stderr?: string }) => e.stderr?.trim() ?? '',
    );
    throw new Error(`Glance 30 tests need the Debian 13 root (scripts/trixie-root.sh): ${said || check || String(err)}`);
  }
}

type ClientOptions = Partial<ConstructorParameters<typeof GlanceClient>[0]>;

/** A Glance client acting as the demo project's member, sending nova's service token (or none) with location calls. */
export function memberClient(bed: KeystoneBed, service: 'nova' | 'none', extra: ClientOptions = {}): GlanceClient {
  return new GlanceClient({
    endpoint: bed.glanceUrl,
    retryDelayMs: 20,
    token: {
      token: () => userToken(bed, 'member'),
      ...(service === 'nova' ? { serviceToken: () => userToken(bed, 'nova') } : {}),
    },
    ...extra,
  });
}

/** A Glance client acting as nova's service user itself (its own token carries the `service` role). */
export function novaClient(bed: KeystoneBed, extra: ClientOptions = {}): GlanceClient {
  return new GlanceClient({ endpoint: bed.glanceUrl, retryDelayMs: 20, token: { token: () => userToken(bed, 'nova') }, ...extra });
}

export function md5(data: Uint8Array): string {
  return createHash('md5').update(data).digest('hex');
}

export function sha512(data: Uint8Array): string {
  return createHash('sha512').update(data).digest('hex');
}

/** A disk `<own vms>/<name>` holding exactly `data` (rbd import as admin); returns its rbd:// source. */
export async function diskWith(pools: OwnPools, cluster: ClusterInfo, name: string, data: Uint8Array): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'g30-disk-'));
  try {
    await writeFile(join(dir, 'data'), data);
    await rbd(cluster, ['import', '--no-progress', join(dir, 'data'), `${pools.vms}/${name}`]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return `rbd://${cluster.fsid}/${pools.vms}/${name}`;
}

/** Waits until Glance's background hashing has written os_hash_value (bounded: a hang is a failure). */
export async function hashedImage(bed: KeystoneBed, id: string, boundMs = 120_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + boundMs;
  for (;;) {
    const image = await glanceImage(bed, id);
    if (!image) throw new Error(`image ${id} vanished while waiting for its hashes`);
    if (image.os_hash_value) return image;
    if (Date.now() > deadline) throw new Error(`Glance did not hash image ${id} within ${boundMs} ms: ${JSON.stringify(image)}`);
    await sleep(250);
  }
}


/** Waits until Glance no longer has image `id` (bounded: a hang is a failure). */
export async function imageGone(bed: KeystoneBed, id: string, boundMs: number): Promise<void> {
  const deadline = Date.now() + boundMs;
  while ((await glanceImage(bed, id)) !== null) {
    if (Date.now() > deadline) throw new Error(`Glance still has image ${id} after ${boundMs} ms`);
    await sleep(500);
  }
}
