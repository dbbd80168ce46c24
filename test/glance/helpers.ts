// Shared by the Glance client tests: a client on the test bed's glance-api, a tracker that deletes every
// Glance image and RBD image a test made, and deterministic data to compare downloads against.
import { createHash, randomBytes } from 'node:crypto';
import { writeFile, rm, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, type Dispatcher } from 'undici';
import { GlanceClient, type GlanceClientOptions } from '../../src/glance/index.js';
import { rbd, rbdJson, type ClusterInfo } from '../support/testbed.js';

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

export async function rbdImageExists(cluster: ClusterInfo, pool: string, name: string): Promise<boolean> {
  return (await rbdJson<string[]>(cluster, ['ls', pool])).includes(name);
}

/** Records what a test creates and deletes all of it afterwards, Glance images first (they own RBD data). */
export class Cleanup {
  private readonly images = new Set<string>();
  private readonly rbdImages = new Set<string>();

  constructor(
    private readonly client: GlanceClient,
    private readonly cluster: ClusterInfo,
  ) {}

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
      await this.client.deleteImage(id, { ignoreMissing: true }).catch((e: unknown) => errors.push(e));
      // Uploaded data lives in images/<image id>; it must be gone with the image.
      if (await rbdImageExists(this.cluster, 'images', id)) errors.push(new Error(`images/${id} left behind`));
    }
    for (const spec of this.rbdImages) await removeRbdImage(this.cluster, spec).catch((e: unknown) => errors.push(e));
    this.images.clear();
    this.rbdImages.clear();
    if (errors.length > 0) throw new AggregateError(errors, 'cleanup failed');
  }
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
