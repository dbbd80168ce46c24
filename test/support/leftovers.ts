// The one leftovers probe every test leans on: a full listing of everything a run could leave behind —
// every image of every pool of every cluster in scope with its snapshots (trash namespace included) and
// its `snapstore.*` metadata keys, every pool's RBD trash, every key of snapstore's own omap objects in it
// (the run journal, the RBD store's pending index), every entry of the file stores' directories,
// every image Glance lists — taken before and after, compared exactly. No name patterns, no age
// exemptions: a test that uses it lists only what is its own — clusters and a Glance of its own
// (test/support/own-bed.ts), or pools of its own on the shared test bed's clusters (own-pools.ts), a
// directory of its own — so nothing but its own runs changes what it sees. What a run was meant to leave (its result) comes from the
// run's own events (`producedBy`), never from the test's guesses.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, omapListAll, type Ioctx } from 'ceph-rbd-napi';
import { JOURNAL_OBJECT, QUEUED_ENTRY_PREFIX } from '../../src/coordinator/journal/journal.js';
import { PENDING_INDEX_OBJECT } from '../../src/drivers/rbd/layout.js';
import { afterAll, expect } from 'vitest';
import type { CoordinatorEvent, SnapshotResult } from '../../src/coordinator/index.js';
import type { ClusterInfo, TestbedEnv } from './testbed.js';

/** What one pool holds. Snapshots are `namespace:name` (a trashed snapshot by the name it had). */
export interface PoolListing {
  images: Record<string, { snapshots: string[]; meta: string[] }>;
  /** `name (source)` of every trash entry. */
  trash: string[];
  /**
   * `object: key` of every key of snapstore's omap objects in the pool (run journal, pending index) but the
   * flatten queue's index entries (`queued.<image>`): by design (coordinator/flatten-queue.ts) those only
   * say where to look — the request on the image is the truth, and an entry whose image is gone (deleted
   * through Glance, which cannot know the journal) or holds no request is dropped by the next listing.
   */
  index: string[];
}

export interface Listing {
  /** By cluster fsid, then pool. */
  rbd: Record<string, Record<string, PoolListing>>;
  /** Every file under each directory, hidden ones included, relative and sorted. */
  dirs: Record<string, string[]>;
  /** By Glance URL: `id status` of every image it lists. */
  glance: Record<string, string[]>;
}

export interface Scope {
  clusters: ClusterInfo[];
  /** Only these pools of each cluster (a test's own pools on a shared test bed); every pool when absent. */
  pools?: string[];
  dirs?: string[];
  glance?: string[];
  /** An X-Auth-Token for listing a Glance behind Keystone (admin's, so it lists every project's images). */
  glanceToken?: () => Promise<string>;
}

export interface Snapshot {
  scope: Scope;
  listing: Listing;
}

/** Something a run was meant to leave: an RBD image (with its protected `snap`), a file, a Glance image. */
export type Expected =
  | { rbd: { fsid: string; pool: string; image: string }; snapshots: string[]; meta: string[] }
  | { file: { dir: string; name: string } }
  | { glance: { url: string; id: string; status: string } };

/** Admin connections, one per cluster, that watch from outside snapstore (the rbd CLI costs a process per question). */
const admins = new Map<string, Promise<Cluster>>();

export function adminOf(cluster: ClusterInfo): Promise<Cluster> {
  let c = admins.get(cluster.conf);
  if (!c) {
    // An observer fails fast on a cluster a test stopped (ops default to a 300 s bound, for runs to ride out outages).
    c = Cluster.connect({ confPath: cluster.conf, user: 'admin', timeoutMs: 15_000, opTimeoutMs: 15_000 });
    admins.set(cluster.conf, c);
  }
  return c;
}

/** Closes the admin connections to these clusters (all when none given): before a cluster is stopped. */
export async function closeAdmins(confs?: string[]): Promise<void> {
  const closing = [...admins.entries()].filter(([conf]) => !confs || confs.includes(conf));
  for (const [conf] of closing) admins.delete(conf);
  await Promise.all(closing.map(async ([, c]) => (await c.catch(() => null))?.close()));
}
afterAll(() => closeAdmins());

async function listPool(admin: Cluster, pool: string): Promise<PoolListing> {
  const io = await admin.openIoctx(pool);
  try {
    const images: PoolListing['images'] = {};
    for (const name of (await io.listImages()).sort()) {
      const image = await io.openImage(name, { readOnly: true });
      try {
        const [snaps, meta] = await Promise.all([image.snapList(), image.metadataList()]);
        images[name] = {
          snapshots: snaps.map((s) => `${s.namespace}:${s.originalName ?? s.name}`).sort(),
          meta: Object.keys(meta).filter((k) => k.startsWith('snapstore.')).sort(),
        };
      } finally {
        await image.close();
      }
    }
    const trash = (await io.trashList()).map((t) => `${t.name} (${t.source})`).sort();
    const index: string[] = [];
    for (const object of [JOURNAL_OBJECT, PENDING_INDEX_OBJECT]) {
      for (const key of await omapKeys(io, object)) {
        if (object === JOURNAL_OBJECT && key.startsWith(QUEUED_ENTRY_PREFIX)) continue;
        index.push(`${object}: ${key}`);
      }
    }
    return { images, trash, index: index.sort() };
  } finally {
    await io.close();
  }
}

/** The omap keys of `object` (none when it does not exist). */
async function omapKeys(io: Ioctx, object: string): Promise<string[]> {
  try {
    return [...(await omapListAll(io, object)).keys()];
  } catch (err) {
    if ((err as { code?: string }).code === 'NOT_FOUND') return [];
    throw err;
  }
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => !e.isDirectory())
      .map((e) => join(e.parentPath, e.name).slice(dir.length + 1))
      .sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

async function listGlance(url: string, token?: () => Promise<string>): Promise<string[]> {
  const out: string[] = [];
  let next: string | undefined = '/v2/images?limit=200';
  while (next) {
    const res = await fetch(`${url}${next}`, token ? { headers: { 'x-auth-token': await token() } } : {});
    if (!res.ok) throw new Error(`GET ${next} from Glance answered ${res.status}`);
    const body = (await res.json()) as { images: Array<{ id: string; status: string }>; next?: string };
    out.push(...body.images.map((i) => `${i.id} ${i.status}`));
    next = body.next;
  }
  return out.sort();
}

/** Lists everything in `scope` (what a snapshot holds; for a probe of a test's own, e.g. one store's pool). */
export async function list(scope: Scope): Promise<Listing> {
  const listing: Listing = { rbd: {}, dirs: {}, glance: {} };
  for (const cluster of scope.clusters) {
    const admin = await adminOf(cluster);
    const pools: Record<string, PoolListing> = {};
    const names = scope.pools ? [...scope.pools] : await admin.listPools();
    for (const pool of names.sort()) pools[pool] = await listPool(admin, pool);
    listing.rbd[cluster.fsid] = pools;
  }
  for (const dir of scope.dirs ?? []) listing.dirs[dir] = listDir(dir);
  for (const url of scope.glance ?? []) listing.glance[url] = await listGlance(url, scope.glanceToken);
  return listing;
}

function withExpected(listing: Listing, expected: Expected[]): Listing {
  const out = structuredClone(listing);
  for (const e of expected) {
    if ('rbd' in e) {
      const pool = out.rbd[e.rbd.fsid]?.[e.rbd.pool];
      if (!pool) throw new Error(`expected image in ${e.rbd.fsid}/${e.rbd.pool}, which the probe does not list`);
      pool.images[e.rbd.image] = { snapshots: [...e.snapshots].sort(), meta: [...e.meta].sort() };
      pool.images = Object.fromEntries(Object.entries(pool.images).sort(([x], [y]) => x.localeCompare(y)));
    } else if ('file' in e) {
      const files = out.dirs[e.file.dir];
      if (!files) throw new Error(`expected file in ${e.file.dir}, which the probe does not list`);
      files.push(e.file.name);
      files.sort();
    } else {
      const images = out.glance[e.glance.url];
      if (!images) throw new Error(`expected Glance image in ${e.glance.url}, which the probe does not list`);
      images.push(`${e.glance.id} ${e.glance.status}`);
      images.sort();
    }
  }
  return out;
}

/**
 * What the finished runs among `events` were meant to leave: each `result`'s image at its location (an RBD
 * image holds exactly its protected `snap` and no snapstore metadata but, for an instant snapshot, its
 * flatten request; a file store holds exactly the file) and its Glance image, in `glanceUrl`.
 */
export function producedBy(events: CoordinatorEvent[], glanceUrl?: string): Expected[] {
  return events.flatMap((e) => (e.type === 'result' ? resultLeaves(e.result, glanceUrl) : []));
}

/** What one finished run was meant to leave, from its result (the CLI's `--json` output, or a `result` event's). */
export function resultLeaves(r: SnapshotResult, glanceUrl?: string): Expected[] {
  const out: Expected[] = [];
  const loc = new URL(r.location);
  if (loc.protocol === 'rbd:') {
    const [pool, image] = decodeURIComponent(loc.pathname).split('/').filter(Boolean) as [string, string];
    out.push({ rbd: { fsid: loc.host, pool, image }, snapshots: ['user:snap'], meta: r.flatten === 'pending' ? ['snapstore.flatten'] : [] });
  } else {
    const path = decodeURIComponent(loc.pathname);
    out.push({ file: { dir: path.slice(0, path.lastIndexOf('/')), name: path.slice(path.lastIndexOf('/') + 1) } });
  }
  if (r.glance) {
    if (!glanceUrl) throw new Error(`the run registered Glance image ${r.glance.id}: say which Glance`);
    out.push({ glance: { url: glanceUrl, id: r.glance.id, status: r.glance.status } });
  }
  return out;
}

export interface Leftovers {
  /** Lists everything in scope: the bed's clusters and Glance, plus `extra` (another cluster, a store's directory). */
  snapshot(extra?: Partial<Scope>): Promise<Snapshot>;
  /** Lists the same scope again and asserts it equals `before` plus exactly `expected`. */
  expectUnchanged(before: Snapshot, expected?: Expected[]): Promise<void>;
}

/** The probe over a test bed (read when called: an own bed is started in beforeAll). */
export function leftoversOf(env: TestbedEnv): Leftovers {
  return leftoversIn(() => ({ clusters: [env.clusters.a, env.clusters.b], glance: env.glance ? [env.glance.url] : [] }));
}

/**
 * The probe over `base()` (read when called, so it may name pools made in beforeAll) plus what a snapshot
 * adds: on a shared test bed, exactly a test file's own pools (test/support/own-pools.ts), its own
 * directories, and Glance only where the file registers images.
 */
export function leftoversIn(base: () => Scope): Leftovers {
  return {
    async snapshot(extra = {}) {
      const b = base();
      const scope: Scope = {
        clusters: [...b.clusters, ...(extra.clusters ?? [])],
        pools: extra.pools ?? b.pools,
        dirs: [...(b.dirs ?? []), ...(extra.dirs ?? [])],
        glance: [...(b.glance ?? []), ...(extra.glance ?? [])],
        glanceToken: extra.glanceToken ?? b.glanceToken,
      };
      return { scope, listing: await list(scope) };
    },
    async expectUnchanged(before, expected = []) {
      const after = await list(before.scope);
      expect(after, 'leftovers: what is there now vs. what was there before plus what the runs made').toEqual(
        withExpected(before.listing, expected),
      );
    },
  };
}
