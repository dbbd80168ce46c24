// What tests see of the test bed, and the Ceph CLI helpers they use to check results independently of
// snapstore's own code (the `rbd` and `ceph` commands, as an operator would).
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { inject } from 'vitest';
import type { ClusterInfo, TestbedEnv } from '../../scripts/testbed.mjs';

export type { ClusterInfo, GlanceInfo, TestbedEnv } from '../../scripts/testbed.mjs';

declare module 'vitest' {
  export interface ProvidedContext {
    testbed: TestbedEnv;
  }
}

const run = promisify(execFile);

export function testbed(): TestbedEnv {
  return inject('testbed');
}

/** A name no other test (or run) uses; prefix says which test made it when something leaks. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

/** Runs `rbd` against a cluster as a cephx user (default admin); returns stdout. */
export async function rbd(cluster: ClusterInfo, args: string[], user = 'admin'): Promise<string> {
  const { stdout } = await run('rbd', ['-c', cluster.conf, '--id', user, ...args], {
    maxBuffer: 64 * 1024 * 1024,
  });
  return stdout;
}

export async function rbdJson<T>(cluster: ClusterInfo, args: string[], user = 'admin'): Promise<T> {
  return JSON.parse((await rbd(cluster, [...args, '--format', 'json'], user)) || 'null') as T;
}

/** Runs `ceph` against a cluster as admin; returns stdout. */
export async function ceph(cluster: ClusterInfo, args: string[]): Promise<string> {
  const { stdout } = await run('ceph', ['-c', cluster.conf, ...args]);
  return stdout;
}

export interface PoolContents {
  images: string[];
  /** `image@snap` for every snapshot, trash namespace included. */
  snapshots: string[];
  trash: string[];
}

/**
 * Images, snapshots (`image@snap`, trash namespace included) and trash entries of a pool that pass
 * `keep`, as `rbd ls`, `rbd snap ls --all` and `rbd trash ls --all` see them. Other test files create and
 * delete images concurrently: an image that vanishes between the listing and its `snap ls` is skipped.
 */
export async function poolContents(
  cluster: ClusterInfo,
  pool: string,
  keep: (name: string) => boolean = () => true,
): Promise<PoolContents> {
  const all = await rbdJson<string[]>(cluster, ['ls', pool]);
  const snapshots: string[] = [];
  const present: string[] = [];
  for (const image of all) {
    try {
      const snaps = await rbdJson<Array<{ name: string }>>(cluster, ['snap', 'ls', '--all', `${pool}/${image}`]);
      snapshots.push(...snaps.map((s) => `${image}@${s.name}`).filter(keep));
      present.push(image);
    } catch (err) {
      if (!/No such file or directory|error opening image/.test(String((err as { stderr?: string }).stderr ?? err))) throw err;
    }
  }
  const trash = await rbdJson<Array<{ name: string }>>(cluster, ['trash', 'ls', '--all', pool]);
  return { images: present.filter(keep), snapshots, trash: trash.map((t) => t.name).filter(keep) };
}

/** Images, snapshots (`image@snap`) and trash entries in a pool whose name contains `marker`. */
export async function leftovers(cluster: ClusterInfo, pool: string, marker: string): Promise<PoolContents> {
  return poolContents(cluster, pool, (name) => name.includes(marker));
}

export const NOTHING: PoolContents = { images: [], snapshots: [], trash: [] };
