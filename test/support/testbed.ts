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
