// Shared by the coordinator tests: instance disks made with the rbd CLI as nova, content hashes read with
// `rbd export` (independently of snapstore), coordinator configs for the test bed's users, and the check
// that nothing was left behind in any pool, trash included, nor in Glance.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { Cluster } from 'ceph-rbd-napi';
import { afterAll, expect } from 'vitest';
import type { RbdSourceConfig, RbdTargetConfig } from '../../src/config/types.js';
import { PROBE_PREFIX, SnapshotCoordinator, type CoordinatorEvent, type SnapshotCoordinatorOptions } from '../../src/coordinator/index.js';
import { rbd, rbdJson, type ClusterInfo } from '../support/testbed.js';

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

/** Admin connections that watch the clusters from outside snapstore, one per cluster, closed after the file. */
const observers = new Map<string, Promise<Cluster>>();
/** Disks made by makeDisk in this file: removed after it (memstore OSDs hold every byte in RAM). */
const disks: Array<{ cluster: ClusterInfo; name: string }> = [];
afterAll(async () => {
  await Promise.all(disks.splice(0).map((d) => removeImage(d.cluster, `vms/${d.name}`).catch(() => {})));
  const all = [...observers.values()];
  observers.clear();
  await Promise.all(all.map(async (c) => (await c).close()));
});

function observer(cluster: ClusterInfo): Promise<Cluster> {
  let c = observers.get(cluster.conf);
  if (!c) {
    c = Cluster.connect({ confPath: cluster.conf, user: 'admin' });
    observers.set(cluster.conf, c);
  }
  return c;
}

/**
 * Nothing of a run is left: no image named by `ids` or `snapstore-*` in `images` (trash included), no
 * snapshot on the disk but `keepSnaps` (trash namespace included), no snapstore metadata on it. Read through
 * an admin connection of its own (the rbd CLI would cost a process per question).
 */
export async function expectClean(
  cluster: ClusterInfo,
  disk: string,
  ids: string[],
  opts: { keepSnaps?: string[] } = {},
): Promise<void> {
  const admin = await observer(cluster);
  const [images, vms] = await Promise.all([admin.openIoctx('images'), admin.openIoctx('vms')]);
  try {
    // Probe images live well under a second, and other tests' checks run concurrently: only an old one is a leak.
    const probeAge = (n: string) => Date.now() - parseInt(n.slice(PROBE_PREFIX.length).replace('-', '').slice(0, 12), 16);
    const ours = (n: string) => ids.includes(n) || (n.startsWith('snapstore-') && !(n.startsWith(PROBE_PREFIX) && probeAge(n) < 30_000));
    const image = await vms.openImage(disk, { readOnly: true });
    try {
      const [names, imagesTrash, diskSnaps, vmsTrash, meta] = await Promise.all([
        images.listImages(),
        images.trashList(),
        image.snapList(),
        vms.trashList(),
        image.metadataList(),
      ]);
      expect(names.filter(ours)).toEqual([]);
      expect(imagesTrash.map((t) => t.name).filter(ours)).toEqual([]);
      expect(diskSnaps.map((s) => s.originalName ?? s.name).filter((n) => !(opts.keepSnaps ?? []).includes(n))).toEqual([]);
      expect(vmsTrash.map((t) => t.name).filter((n) => n.includes(disk))).toEqual([]);
      expect(Object.keys(meta).filter((k) => k.startsWith('snapstore.'))).toEqual([]);
    } finally {
      await image.close();
    }
  } finally {
    await Promise.all([images.close(), vms.close()]);
  }
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

/** Removes an image a test made (unprotecting and removing its snapshots first), as admin; gone is fine. */
export async function removeImage(cluster: ClusterInfo, spec: string): Promise<void> {
  const [pool, name] = spec.split('/') as [string, string];
  const io = await (await observer(cluster)).openIoctx(pool);
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
