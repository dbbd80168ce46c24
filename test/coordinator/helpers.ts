// Shared by the coordinator tests: instance disks made with the rbd CLI as nova, content hashes read with
// `rbd export` (independently of snapstore), coordinator configs for the test bed's users, and
// Glance helpers. What is left behind is checked by test/support/leftovers.ts.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Image as RbdImage } from 'ceph-rbd-napi';
import { afterAll, expect } from 'vitest';
import type { RbdSourceConfig, RbdTargetConfig } from '../../src/config/types.js';
import { withFaults, type StepName } from '../../src/coordinator/faults.js';
import { SnapshotCoordinator, type CoordinatorEvent, type SnapshotCoordinatorOptions } from '../../src/coordinator/index.js';
import { adminOf } from '../support/leftovers.js';
import { isStopped } from '../support/own-bed.js';
import { rbd, rbdJson, uniqueName, type ClusterInfo } from '../support/testbed.js';

export function sourceConfig(cluster: ClusterInfo, user = 'nova'): RbdSourceConfig {
  return { confPath: cluster.conf, user, pool: 'vms', connectTimeoutMs: 10_000 };
}

export function rbdTarget(cluster: ClusterInfo, user = 'glance'): RbdTargetConfig {
  return { kind: 'rbd', confPath: cluster.conf, user, pool: 'images', chunkSizeMiB: 8, thinProvisioning: true, connectTimeoutMs: 10_000 };
}

export function coordinator(opts: SnapshotCoordinatorOptions, events: CoordinatorEvent[] = []): SnapshotCoordinator {
  return new SnapshotCoordinator({ logger: (e) => events.push(e), ...opts });
}

/**
 * A disk in `vms` written by `rbd bench` at random 4 MiB offsets: `sizeMiB` big, about `dataMiB` allocated.
 * Returns its rbd:// source string.
 */
export async function makeDisk(cluster: ClusterInfo, name: string, sizeMiB: number, dataMiB: number): Promise<string> {
  await rbd(cluster, ['create', `vms/${name}`, '--size', `${sizeMiB}M`], 'nova');
  disks.push({ cluster, name });
  if (dataMiB > 0) {
    await rbd(
      cluster,
      ['bench', '--io-type', 'write', '--io-size', '4M', '--io-total', `${dataMiB}M`, '--io-pattern', 'rand', '--io-threads', '4', `vms/${name}`],
      'nova',
    );
  }
  return `rbd://${cluster.fsid}/vms/${name}`;
}

/** md5 of an image (or image@snap) as `rbd export` streams it. */
export async function exportMd5(cluster: ClusterInfo, spec: string, user = 'admin'): Promise<string> {
  const child = spawn('rbd', ['-c', cluster.conf, '--id', user, 'export', '--no-progress', spec, '-'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const hash = createHash('md5');
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.on('data', (d: Buffer) => hash.update(d));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`rbd export ${spec} failed (${code}): ${stderr}`);
  return hash.digest('hex');
}

/** Bytes `rbd du` reports in use for an image (or image@snap). */
export async function usedBytes(cluster: ClusterInfo, spec: string): Promise<number> {
  const du = await rbdJson<{ images: Array<{ name: string; snapshot?: string; used_size: number }> }>(cluster, ['du', spec]);
  return du.images.reduce((n, i) => n + i.used_size, 0);
}

export interface ImageInfo {
  parent?: unknown;
  features?: string[];
  size: number;
}

export async function imageInfo(cluster: ClusterInfo, spec: string): Promise<ImageInfo> {
  return rbdJson<ImageInfo>(cluster, ['info', spec]);
}

export async function snaps(cluster: ClusterInfo, spec: string): Promise<Array<{ name: string; protected: string }>> {
  return rbdJson(cluster, ['snap', 'ls', '--all', spec]);
}

/** Disks made by makeDisk in this file: removed after it (memstore OSDs hold every byte in RAM). */
const disks: Array<{ cluster: ClusterInfo; name: string }> = [];
afterAll(async () => {
  // A file's own test bed is gone by now (its hooks ran first), and its disks with it.
  const left = disks.splice(0).filter((d) => !isStopped(d.cluster.conf));
  await Promise.all(left.map((d) => removeImage(d.cluster, `vms/${d.name}`).catch(() => {})));
});

/** Glance's answer for an image id: its status, or 'absent' (deleted images answer 404). */
export async function glanceStatus(url: string, id: string): Promise<string> {
  const res = await fetch(`${url}/v2/images/${id}`);
  if (res.status === 404) return 'absent';
  if (!res.ok) throw new Error(`GET /v2/images/${id} answered ${res.status}`);
  const body = (await res.json()) as { status: string };
  return body.status;
}

/** Deletes a Glance image and checks that Glance did (204), and that it answers 404 for it afterwards. */
export async function deleteGlanceImage(url: string, id: string): Promise<void> {
  const res = await fetch(`${url}/v2/images/${id}`, { method: 'DELETE' });
  expect(res.status, `DELETE /v2/images/${id}`).toBe(204);
  expect(await glanceStatus(url, id)).toBe('absent');
}

/** Removes an image a test made (unprotecting and removing its snapshots first), as admin; gone is fine. */
export async function removeImage(cluster: ClusterInfo, spec: string): Promise<void> {
  const [pool, name] = spec.split('/') as [string, string];
  const io = await (await adminOf(cluster)).openIoctx(pool);
  try {
    if (!(await io.listImages()).includes(name)) return;
    const image = await io.openImage(name);
    try {
      for (const s of await image.snapList()) {
        if (s.namespace !== 'user') continue;
        if (await image.snapIsProtected(s.name)) await image.snapUnprotect(s.name);
        await image.snapRemove(s.name);
      }
    } finally {
      await image.close();
    }
    await io.removeImage(name);
  } finally {
    await io.close();
  }
}

/**
 * Stops one daemon of a test cluster (`osd.0`, `mon.a`: SIGTERM by its pid file, as a restart does) and
 * starts it again after `ms` as ceph-cluster.sh started it (same data, address, pid file); resolves once
 * it was started.
 */
export async function restartDaemon(cluster: { dir: string; conf: string }, name: 'osd.0' | 'mon.a', ms: number): Promise<void> {
  const pid = Number(readFileSync(join(cluster.dir, 'run', `${name}.pid`), 'utf8'));
  process.kill(pid, 'SIGTERM');
  await new Promise((r) => setTimeout(r, ms));
  const [kind, id] = name.split('.') as [string, string];
  await new Promise<void>((resolve, reject) => {
    const daemon = spawn(`ceph-${kind}`, ['-c', cluster.conf, '-i', id], { stdio: 'ignore' });
    daemon.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`ceph-${kind} exited ${code}`))));
  });
}

/** Writes to the disk as admin through the addon (bytes at offsets, and discards). */
export async function onDisk(cluster: ClusterInfo, disk: string, use: (image: RbdImage) => Promise<void>): Promise<void> {
  const io = await (await adminOf(cluster)).openIoctx('vms');
  try {
    const image = await io.openImage(disk);
    try {
      await use(image);
      await image.flush();
    } finally {
      await image.close();
    }
  } finally {
    await io.close();
  }
}

export interface RestartCase {
  /** The disk's cluster, and the store's (whose daemon restarts). */
  from: ClusterInfo;
  to: ClusterInfo;
  /** The user writing the store (the direct path needs nova's write on images). */
  storeUser: string;
  daemon: 'osd.0' | 'mon.a';
  /** The step whose operations go out while the daemon is down. */
  step: StepName;
  method: 'direct' | 'copy';
  outageMs: number;
  dataMiB: number;
  name: string;
}

/**
 * A snapshot of a fresh 64 MiB disk, with 5 s connect timeouts (as nova's rbd_connect_timeout often is),
 * while the store cluster's `daemon` is stopped for `outageMs` from `step` on: it waited for the daemon
 * (the outage was inside the run) and finished with the disk's content, flattened.
 */
export async function expectRidesOutRestart(k: RestartCase): Promise<void> {
  const disk = uniqueName(k.name);
  const source = await makeDisk(k.from, disk, 64, k.dataMiB);
  const before = await exportMd5(k.from, `vms/${disk}`);
  const outage: { restarted: Promise<void> | null } = { restarted: null };
  const opts = withFaults(
    { source: { ...sourceConfig(k.from), connectTimeoutMs: 5000 }, target: { ...rbdTarget(k.to, k.storeUser), connectTimeoutMs: 5000 } },
    (p) => {
      if (p.step === k.step && p.when === 'before' && !outage.restarted) outage.restarted = restartDaemon(k.to, k.daemon, k.outageMs);
    },
  );
  const c = coordinator(opts);
  let id = '';
  try {
    const started = Date.now();
    const result = await c.snapshot(source, {});
    id = result.imageId;
    expect(result.method).toBe(k.method);
    await outage.restarted;
    expect(outage.restarted).not.toBeNull();
    expect(Date.now() - started).toBeGreaterThan(k.outageMs);
    expect((await imageInfo(k.to, `images/${id}`)).parent).toBeUndefined();
    expect(await exportMd5(k.to, `images/${id}@snap`)).toBe(before);
  } finally {
    await outage.restarted?.catch(() => {});
    await c.close();
    if (id) await removeImage(k.to, `images/${id}`);
    if (k.from !== k.to) await removeImage(k.from, `vms/${disk}`);
  }
}
