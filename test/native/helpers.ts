// Shared by the native addon tests: connections to the test bed's clusters and cleanup that
// works whatever state a failed test left an image in.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import * as rbd from 'ceph-rbd-napi';
import type { ClusterInfo } from '../support/testbed.js';

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

/** Connects as `user` (admin by default; a user of the file's own pools comes with its keyring). */
export function connect(cluster: ClusterInfo, user: string | { user: string; keyring: string } = 'admin'): Promise<rbd.Cluster> {
  return rbd.Cluster.connect({ confPath: cluster.conf, ...(typeof user === 'string' ? { user } : user) });
}

/** Removes an image with all its snapshots (unprotecting them first), ignoring what is already gone. */
export async function destroyImage(io: rbd.Ioctx, name: string): Promise<void> {
  let image: rbd.Image;
  try {
    image = await io.openImage(name);
  } catch (err) {
    if (err instanceof rbd.NotFoundError) return;
    throw err;
  }
  try {
    for (const snap of await image.snapList()) {
      if (snap.namespace !== 'user') continue;
      if (await image.snapIsProtected(snap.name)) await image.snapUnprotect(snap.name);
      await image.snapRemove(snap.name);
    }
  } finally {
    await image.close();
  }
  await io.removeImage(name);
}

/** Resolves with the promise, or rejects when it takes longer than `ms` (a hang, not a slow call). */
export async function within<T>(ms: number, promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A full garbage collection now (exposing gc at run time when the process was started without it). */
export function forceGc(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

export { lagMonitor, type LagReport } from '../../scripts/lag-monitor.mjs';

/** A 4 MiB-aligned chunk whose bytes say which chunk it is. */
export function chunk(index: number, size = 4 * MiB): Buffer {
  const buf = Buffer.alloc(size, (index % 250) + 1);
  buf.writeUInt32BE(index, 0);
  return buf;
}
