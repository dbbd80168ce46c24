// Shared by the Glance client tests: a glance-api of a file's own on pools of its own, a tracker that deletes
// every Glance image and RBD image a test made and then compares the leftovers probe with what was there
// before, and deterministic data to compare downloads against.
import { createHash, randomBytes } from 'node:crypto';
import { writeFile, rm, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, type Dispatcher } from 'undici';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import { startGlance, stopGlance, type GlanceInfo } from '../../scripts/testbed.mjs';
import { GlanceClient, type GlanceClientOptions } from '../../src/glance/index.js';
import { leftoversIn, list, type Leftovers, type Snapshot } from '../support/leftovers.js';
import { ownPools, type OwnPools } from '../support/own-pools.js';
import { rbd, rbdJson, testbed, type ClusterInfo } from '../support/testbed.js';

export function glanceClient(url: string, options: Partial<GlanceClientOptions> = {}): GlanceClient {
  return new GlanceClient({ endpoint: url, retryDelayMs: 20, ...options });
}

/** A dispatcher that counts the requests it is given, to prove a call sent nothing (or how much). */
export function countingDispatcher(): { dispatcher: Dispatcher; requests: () => number; close: () => Promise<void> } {
  const agent = new Agent();
  let n = 0;
  const dispatcher = agent.compose((dispatch) => (opts, handler) => {
    n++;
    return dispatch(opts, handler);
  });
  return { dispatcher, requests: () => n, close: () => agent.close() };
}

/** Removes an RBD image the way an operator would: unprotect and remove its snapshots, then the image. */
export async function removeRbdImage(cluster: ClusterInfo, spec: string): Promise<void> {
  let snaps: Array<{ name: string; protected: string }>;
  try {
    snaps = await rbdJson(cluster, ['snap', 'ls', spec]);
  } catch {
    return; // gone already
  }
  for (const s of snaps) {
    if (s.protected === 'true') await rbd(cluster, ['snap', 'unprotect', `${spec}@${s.name}`]);
    await rbd(cluster, ['snap', 'rm', '--no-progress', `${spec}@${s.name}`]);
  }
  await rbd(cluster, ['rm', '--no-progress', spec]);
}

export interface OwnGlance {
  /** The pools (on cluster a) the Glance stores into, with their users. */
  pools: OwnPools;
  cluster: () => ClusterInfo;
  /** The running glance-api (after beforeAll). */
  info: () => GlanceInfo;
  /** The probe over exactly the own pools and this Glance's image list: nothing else writes there. */
  leftovers: Leftovers;
  /** Names of the images in the own `images` pool now (for a check inside a test, before vs. after). */
  poolImages: () => Promise<string[]>;
}

/**
 * Registers beforeAll/afterAll that start a glance-api of this file's own (~7 s) on pools of its own on
 * cluster a (own-pools.ts), as a user restricted to them: the shared Glance's `images` pool and image list
 * change under other files at the same time, these change only under this file.
 */
export function ownGlance(prefix: string, opts: { sizeCap?: number; multiStore?: boolean } = {}): OwnGlance {
  const cluster = () => testbed().clusters.a;
  const pools = ownPools(prefix, { clusters: () => [cluster()] });
  let dir: string | undefined;
  let info: GlanceInfo | undefined;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), `snapstore-${prefix}-`));
    const c = cluster();
    info = await startGlance(join(dir, 'glance'), c.dir, {
      ...opts,
      pool: pools.images,
      user: pools.glance(c).user,
      cephConf: pools.conf(c),
    });
  }, 180_000);
  afterAll(async () => {
    if (!dir) return;
    await stopGlance(join(dir, 'glance'));
    await rm(dir, { recursive: true, force: true });
  }, 60_000);
  const running = (): GlanceInfo => {
    if (!info) throw new Error('own glance-api not started (read it inside tests and hooks)');
    return info;
  };
  const scope = () => ({ clusters: [cluster()], pools: [pools.images, pools.vms], glance: info ? [info.url] : [] });
  return {
    pools,
    cluster,
    info: running,
    leftovers: leftoversIn(scope),
    async poolImages() {
      const listing = await list({ clusters: [cluster()], pools: [pools.images] });
      return Object.keys(listing.rbd[cluster().fsid]?.[pools.images]?.images ?? {});
    },
  };
}

/**
 * Records what a test creates and deletes all of it afterwards, Glance images first (they own RBD data),
 * then asserts the probe (own pools, own Glance's image list) shows exactly what it showed at `start`.
 */
export class Cleanup {
  private readonly images = new Set<string>();
  private readonly rbdImages = new Set<string>();
  private before: Snapshot | undefined;

  constructor(
    private readonly client: () => GlanceClient,
    private readonly cluster: () => ClusterInfo,
    private readonly leftovers: Leftovers,
  ) {}

  /** Takes the "before" listing (beforeEach). */
  async start(): Promise<void> {
    this.before = await this.leftovers.snapshot();
  }

  image(id: string): string {
    this.images.add(id);
    return id;
  }

  rbdImage(spec: string): string {
    this.rbdImages.add(spec);
    return spec;
  }

  async run(): Promise<void> {
    const errors: unknown[] = [];
    for (const id of this.images) {
      await this.client().deleteImage(id, { ignoreMissing: true }).catch((e: unknown) => errors.push(e));
    }
    for (const spec of this.rbdImages) await removeRbdImage(this.cluster(), spec).catch((e: unknown) => errors.push(e));
    this.images.clear();
    this.rbdImages.clear();
    if (errors.length > 0) throw new AggregateError(errors, 'cleanup failed');
    // Uploaded data lives in <own images pool>/<image id>: it must be gone with the Glance image.
    if (!this.before) throw new Error('Cleanup.start() was not called before the test');
    const before = this.before;
    this.before = undefined;
    await this.leftovers.expectUnchanged(before);
  }
}

/**
 * The set-up of a Glance client test file: a glance-api of its own (ownGlance), a client on it (read it
 * inside tests and hooks), and a Cleanup that takes the probe's listing before each case and, after it,
 * deletes what the case recorded and compares.
 */
export function glanceTestFile(prefix: string): { own: OwnGlance; client: () => GlanceClient; cleanup: Cleanup } {
  const own = ownGlance(prefix);
  let client: GlanceClient | undefined;
  const get = (): GlanceClient => {
    if (!client) throw new Error('Glance client not made yet (read it inside tests and hooks)');
    return client;
  };
  const cleanup = new Cleanup(get, own.cluster, own.leftovers);
  beforeAll(() => {
    client = glanceClient(own.info().url);
  });
  beforeEach(() => cleanup.start());
  afterEach(() => cleanup.run());
  afterAll(() => client?.close());
  return { own, client: get, cleanup };
}

export function md5(data: Uint8Array): string {
  return createHash('md5').update(data).digest('hex');
}

export function sha512(data: Uint8Array): string {
  return createHash('sha512').update(data).digest('hex');
}

/**
 * Makes `<pool>/<name>@snap` (protected) holding `data`, with the rbd CLI as an operator would; returns the
 * location URL Glance takes.
 */
export async function makeRbdSnapshot(cluster: ClusterInfo, name: string, data: Uint8Array, pool = 'images'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'glance-rbd-'));
  try {
    const file = join(dir, 'data');
    await writeFile(file, data);
    await rbd(cluster, ['import', '--no-progress', file, `${pool}/${name}`]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  await rbd(cluster, ['snap', 'create', `${pool}/${name}@snap`]);
  await rbd(cluster, ['snap', 'protect', `${pool}/${name}@snap`]);
  return `rbd://${cluster.fsid}/${pool}/${encodeURIComponent(name)}/snap`;
}

export function randomData(bytes: number): Buffer {
  return randomBytes(bytes);
}

/** Reads a stream whole (for test-sized data only). */
export async function collect(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}
