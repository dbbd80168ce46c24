// Shared by the coordinator tests: instance disks made with the rbd CLI as nova, content hashes read with
// `rbd export` (independently of snapstore), coordinator configs for the test bed's users, and the check
// that nothing was left behind in any pool, trash included, nor in Glance.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { expect } from 'vitest';
import type { RbdSourceConfig, RbdTargetConfig } from '../../src/config/types.js';
import { SnapshotCoordinator, type CoordinatorEvent, type SnapshotCoordinatorOptions } from '../../src/coordinator/index.js';
import { poolContents, rbd, rbdJson, type ClusterInfo, type PoolContents } from '../support/testbed.js';

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
  size: number;
}

export async function imageInfo(cluster: ClusterInfo, spec: string): Promise<ImageInfo> {
  return rbdJson<ImageInfo>(cluster, ['info', spec]);
}

export async function snaps(cluster: ClusterInfo, spec: string): Promise<Array<{ name: string; protected: string }>> {
  return rbdJson(cluster, ['snap', 'ls', '--all', spec]);
}

/** Pool contents that mention any of `markers` (a disk name, an image id), as poolContents lists them. */
export async function mentioning(cluster: ClusterInfo, pool: string, markers: string[]): Promise<PoolContents> {
  const all = await poolContents(cluster, pool);
  const hit = (s: string) => markers.some((m) => s.includes(m));
  return { images: all.images.filter(hit), snapshots: all.snapshots.filter(hit), trash: all.trash.filter(hit) };
}

/** Nothing of a run is left: no image with `ids` in `images`, no snapshot on the disk but `keep`, no trash. */
export async function expectClean(
  cluster: ClusterInfo,
  disk: string,
  ids: string[],
  opts: { keepSnaps?: string[] } = {},
): Promise<void> {
  const images = await poolContents(cluster, 'images');
  expect(images.images.filter((n) => ids.includes(n) || n.startsWith('snapstore-'))).toEqual([]);
  expect(images.trash.filter((n) => ids.includes(n) || n.startsWith('snapstore-'))).toEqual([]);
  const diskSnaps = await snaps(cluster, `vms/${disk}`);
  expect(diskSnaps.map((s) => s.name).filter((n) => !(opts.keepSnaps ?? []).includes(n))).toEqual([]);
  const vmsTrash = await rbdJson<Array<{ name: string }>>(cluster, ['trash', 'ls', '--all', 'vms']);
  expect(vmsTrash.map((t) => t.name).filter((n) => n.includes(disk))).toEqual([]);
  const meta = await rbdJson<Record<string, string> | Array<{ key: string }>>(cluster, ['image-meta', 'list', `vms/${disk}`]);
  const keys = Array.isArray(meta) ? meta.map((m) => m.key) : Object.keys(meta ?? {});
  expect(keys.filter((k) => k.startsWith('snapstore.'))).toEqual([]);
}

/** Glance's answer for an image id: its status, or 'absent' (deleted images answer 404). */
export async function glanceStatus(url: string, id: string): Promise<string> {
  const res = await fetch(`${url}/v2/images/${id}`);
  if (res.status === 404) return 'absent';
  const body = (await res.json()) as { status: string };
  return body.status;
}

export async function glanceImagesNamed(url: string, name: string): Promise<string[]> {
  const res = await fetch(`${url}/v2/images?name=${encodeURIComponent(name)}`);
  const body = (await res.json()) as { images: Array<{ id: string }> };
  return body.images.map((i) => i.id);
}

export async function deleteGlanceImage(url: string, id: string): Promise<void> {
  await fetch(`${url}/v2/images/${id}`, { method: 'DELETE' });
}

/** Removes an image made by a test (its protected `snap` first). */
export async function removeImage(cluster: ClusterInfo, spec: string): Promise<void> {
  const list = await snaps(cluster, spec).catch(() => []);
  for (const s of list) {
    if (s.protected === 'true') await rbd(cluster, ['snap', 'unprotect', `${spec}@${s.name}`]);
    await rbd(cluster, ['snap', 'rm', `${spec}@${s.name}`]).catch(() => {});
  }
  await rbd(cluster, ['rm', spec]).catch(() => {});
}
