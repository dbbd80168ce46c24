// Pools of a test file's own on the shared test bed's clusters, with users of its own made as the test
// bed makes glance, nova and nova-ro (the same caps, restricted to these pools): the leftovers probe then
// lists exactly these pools, whole, while other files work in `images`/`vms` at the same time. Costs a
// pool create and delete per cluster instead of the 30–60 s of a cluster pair of its own (own-bed.ts).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { leftoversIn, type Leftovers } from './leftovers.js';
import { ceph, rbd, testbed, uniqueName, type ClusterInfo } from './testbed.js';

export interface OwnUser {
  /** cephx id without `client.` */
  user: string;
  /** Its keyring (ceph.conf does not name one for it). */
  keyring: string;
}

export interface OwnPools {
  /** Pool names, the same on every cluster: `images` (Glance's) and `vms` (the disks'). */
  images: string;
  vms: string;
  /** Users like the test bed's, restricted to these pools: per cluster, with a keyring of their own. */
  glance: (cluster: ClusterInfo) => OwnUser;
  nova: (cluster: ClusterInfo) => OwnUser;
  novaRo: (cluster: ClusterInfo) => OwnUser;
  /** A copy of the cluster's ceph.conf that also names these users' keyrings (for config files that
   *  name only a user, as nova.conf and glance-api.conf do). */
  conf: (cluster: ClusterInfo) => string;
  /** The probe over exactly these pools on these clusters (a snapshot may add dirs, Glance). */
  leftovers: Leftovers;
}

/**
 * Registers beforeAll/afterAll that create and remove pools `<prefix>-…-images` and `…-vms` on `clusters`
 * (default both of the shared test bed's) and the users; read the names inside tests and hooks.
 */
export function ownPools(prefix: string, opts: { clusters?: () => ClusterInfo[] } = {}): OwnPools {
  const clustersOf = opts.clusters ?? (() => [testbed().clusters.a, testbed().clusters.b]);
  const tag = uniqueName(prefix);
  const images = `${tag}-images`;
  const vms = `${tag}-vms`;
  const dir = mkdtempSync(join(tmpdir(), `${tag}-keys-`));
  const caps: Record<string, string> = {
    glance: `profile rbd pool=${images}`,
    nova: `profile rbd pool=${vms}, profile rbd pool=${images}`,
    'nova-ro': `profile rbd pool=${vms}, profile rbd-read-only pool=${images}`,
  };
  const userOf = (role: string) => (cluster: ClusterInfo): OwnUser => ({
    user: `${role}-${tag}`,
    keyring: join(dir, `${cluster.fsid}.${role}.keyring`),
  });

  const confOf = (cluster: ClusterInfo) => join(dir, `${cluster.fsid}.ceph.conf`);

  beforeAll(async () => {
    await Promise.all(
      clustersOf().map(async (cluster) => {
        const sections = Object.keys(caps).map((role) => {
          const { user, keyring } = userOf(role)(cluster);
          return `[client.${user}]\nkeyring = ${keyring}\n`;
        });
        writeFileSync(confOf(cluster), `${readFileSync(cluster.conf, 'utf8')}\n${sections.join('')}`);
        // Each `ceph`/`rbd` command is a process of its own (~1 s): run side by side.
        await Promise.all([
          ...[images, vms].map(async (pool) => {
            await ceph(cluster, ['osd', 'pool', 'create', pool, '4', '4']);
            await rbd(cluster, ['pool', 'init', pool]);
          }),
          ...Object.entries(caps).map(([role, osd]) => {
            const { user, keyring } = userOf(role)(cluster);
            return ceph(cluster, ['auth', 'get-or-create', `client.${user}`, 'mon', 'profile rbd', 'osd', osd, '-o', keyring]);
          }),
        ]);
      }),
    );
  }, 120_000);
  afterAll(async () => {
    await Promise.all(
      clustersOf().map(async (cluster) => {
        await Promise.all([
          ...[images, vms].map((pool) => ceph(cluster, ['osd', 'pool', 'delete', pool, pool, '--yes-i-really-really-mean-it'])),
          ...Object.keys(caps).map((role) => ceph(cluster, ['auth', 'del', `client.${userOf(role)(cluster).user}`])),
        ]);
      }),
    );
    rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  return {
    images,
    vms,
    glance: userOf('glance'),
    nova: userOf('nova'),
    novaRo: userOf('nova-ro'),
    conf: confOf,
    leftovers: leftoversIn(() => ({ clusters: clustersOf(), pools: [images, vms] })),
  };
}
