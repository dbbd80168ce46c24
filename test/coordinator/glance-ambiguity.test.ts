// Registration in Glance without a clear answer, against the real glance-api behind a delaying proxy of the
// test's own (127.0.0.1, free port): the location call is forwarded and Glance's answer held past the
// client's timeout, or the call is held and never reaches Glance, or the caller cancels while Glance
// answers, or every read-back fails. Each case must end in a registered, usable image (Glance active, the
// location readable, the data there) or in nothing (Glance image gone, the pools as before) — never in a
// Glance image that points at deleted data.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import type { CoordinatorEvent, SnapshotResult } from '../../src/coordinator/index.js';
import { GlanceClient } from '../../src/glance/client.js';
import { leftoversOf, producedBy } from '../support/leftovers.js';
import { ownTestbed } from '../support/own-bed.js';
import { rbdJson, uniqueName, type ClusterInfo } from '../support/testbed.js';
import { coordinator, deleteGlanceImage, exportMd5, glanceStatus, makeDisk, rbdTarget, sourceConfig } from './helpers.js';

const env = ownTestbed({ glance: true });
const leftovers = leftoversOf(env);
/** The client's timeout: the proxy holds answers well past it. */
const CLIENT_TIMEOUT_MS = 4_000;
const HOLD_MS = CLIENT_TIMEOUT_MS + 3_000;

/** What the proxy does with the location call (a PATCH adding `/locations/-`). */
type LocationRule = 'delay-answer' | 'never-forward';

/**
 * A proxy in front of the real glance-api that delays or withholds answers — a fake only in what it does to
 * timing; every request it forwards is answered by Glance itself.
 */
class DelayingGlanceProxy {
  rule: LocationRule = 'delay-answer';
  /** GETs to fail (answered 503 without asking Glance) after the location call. */
  failGets = 0;
  /** Called when the location call arrives (never-forward) or once Glance has answered it (delay-answer). */
  onLocationCall: () => void = () => {};
  private server: Server | null = null;
  private readonly timers = new Set<NodeJS.Timeout>();
  private sawLocation = false;
  url = '';

  constructor(private readonly upstream: () => string) {}

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res).catch(() => res.destroy()));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  reset(rule: LocationRule, failGets = 0): void {
    Object.assign(this, { rule, failGets, sawLocation: false, onLocationCall: () => {} });
  }

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const isLocation = req.method === 'PATCH' && body.includes('/locations/-');
    if (isLocation) {
      this.sawLocation = true;
      if (this.rule === 'never-forward') {
        this.onLocationCall();
        return this.later(HOLD_MS, () => res.destroy());
      }
    } else if (this.sawLocation && req.method === 'GET' && this.failGets > 0) {
      this.failGets--;
      res.writeHead(503, { 'content-type': 'text/plain' }).end('the delaying proxy fails this read');
      return;
    }
    const answer = await this.forward(req, body);
    if (!isLocation) return void this.reply(res, answer);
    this.onLocationCall();
    // Glance has committed (it answered); the answer reaches the client only after it gave up waiting.
    this.later(HOLD_MS, () => this.reply(res, answer));
  }

  private async forward(req: IncomingMessage, body: Buffer): Promise<{ status: number; headers: Headers; body: Buffer }> {
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string' && k !== 'host' && k !== 'content-length') headers.set(k, v);
    const r = await fetch(this.upstream() + (req.url ?? '/'), { method: req.method, headers, ...(body.length ? { body } : {}) });
    return { status: r.status, headers: r.headers, body: Buffer.from(await r.arrayBuffer()) };
  }

  private reply(res: ServerResponse, answer: { status: number; headers: Headers; body: Buffer }): void {
    if (res.destroyed) return;
    const ct = answer.headers.get('content-type');
    res.writeHead(answer.status, ct ? { 'content-type': ct } : {}).end(answer.body);
  }
}

const proxy = new DelayingGlanceProxy(() => env.glance!.url);
afterAll(() => proxy.stop());

/** The Glance image as Glance itself (not the proxy) shows it. */
async function glanceImage(id: string): Promise<{ status: string; locations?: Array<{ url: string }> }> {
  return (await (await fetch(`${env.glance!.url}/v2/images/${id}`)).json()) as { status: string; locations?: Array<{ url: string }> };
}

interface Outcome {
  result: SnapshotResult | null;
  error: (Error & { code?: string; context?: Record<string, unknown> }) | null;
  events: CoordinatorEvent[];
  ids: string[];
}

async function run(source: string, cluster: ClusterInfo, opts: { mode?: 'copy'; imageId?: string; signal?: AbortSignal } = {}): Promise<Outcome> {
  if (!proxy.url) await proxy.start();
  const glance = new GlanceClient({ endpoint: proxy.url, timeoutMs: CLIENT_TIMEOUT_MS, retries: 0 });
  const events: CoordinatorEvent[] = [];
  const coord = coordinator({ source: sourceConfig(cluster), target: rbdTarget(env.clusters.a), glance }, events);
  try {
    const out = await coord.snapshot(source, { name: 'ambiguity', ...opts }).then(
      (result) => ({ result, error: null }),
      (error: unknown) => ({ result: null, error: error as Outcome['error'] }),
    );
    return { ...out, events, ids: events.flatMap((e) => (e.type === 'run' ? [e.imageId] : [])) };
  } finally {
    await coord.close();
    await glance.close();
  }
}

/** A registered, usable image: Glance active with the location, the data there with the disk's content. */
async function expectRegistered(out: Outcome, diskMd5: string): Promise<SnapshotResult> {
  expect(out.error).toBeNull();
  const result = out.result!;
  const image = await glanceImage(result.imageId);
  expect(image.status).toBe('active');
  expect(image.locations?.map((l) => l.url)).toEqual([result.location]);
  const [, pool, id] = new URL(result.location).pathname.split('/');
  expect(await exportMd5(env.clusters.a, `${pool ?? 'images'}/${id ?? ''}@snap`)).toBe(diskMd5);
  return result;
}

describe('Glance answers unclearly to the location call', () => {
  it('answer delayed past the timeout after Glance committed: the run succeeds (direct path)', async () => {
    const a = env.clusters.a;
    const disk = uniqueName('amb-delay');
    const source = await makeDisk(a, disk, 32, 8);
    const md5 = await exportMd5(a, `vms/${disk}`);
    const nothing = await leftovers.snapshot();
    proxy.reset('delay-answer');
    const out = await run(source, a);
    const result = await expectRegistered(out, md5);
    expect(out.events).toContainEqual(expect.objectContaining({ type: 'glance-outcome', state: 'present' }));
    await leftovers.expectUnchanged(nothing, producedBy(out.events, env.glance!.url));
    await deleteGlanceImage(env.glance!.url, result.imageId);
    await leftovers.expectUnchanged(nothing);
  }, 120_000);

  it('cross-cluster copy, answer delayed and the first read-back failing: the run succeeds', async () => {
    const b = env.clusters.b;
    const disk = uniqueName('amb-copy');
    const source = await makeDisk(b, disk, 32, 8);
    const md5 = await exportMd5(b, `vms/${disk}`);
    const nothing = await leftovers.snapshot();
    proxy.reset('delay-answer', 1);
    const out = await run(source, b);
    const result = await expectRegistered(out, md5);
    expect(result.method).toBe('copy');
    await leftovers.expectUnchanged(nothing, producedBy(out.events, env.glance!.url));
    await deleteGlanceImage(env.glance!.url, result.imageId);
    await leftovers.expectUnchanged(nothing);
  }, 120_000);

  it('the location call never reaches Glance: the image is deleted in Glance, then the data; nothing left', async () => {
    const a = env.clusters.a;
    const disk = uniqueName('amb-held');
    const source = await makeDisk(a, disk, 32, 8);
    const nothing = await leftovers.snapshot();
    proxy.reset('never-forward');
    const out = await run(source, a);
    expect(out.error).toMatchObject({ code: 'SNAPSHOT_FAILED', context: expect.objectContaining({ step: 'glance-add-location' }) });
    expect(out.events).toContainEqual(expect.objectContaining({ type: 'glance-outcome', state: 'absent' }));
    expect(await glanceStatus(env.glance!.url, out.ids[0]!)).toBe('absent');
    await leftovers.expectUnchanged(nothing);
  }, 120_000);

  it('cancelled while Glance commits: the registered image is the result, usable', async () => {
    const a = env.clusters.a;
    const disk = uniqueName('amb-abort');
    const source = await makeDisk(a, disk, 32, 8);
    const md5 = await exportMd5(a, `vms/${disk}`);
    const nothing = await leftovers.snapshot();
    const ctl = new AbortController();
    proxy.reset('delay-answer');
    proxy.onLocationCall = () => ctl.abort();
    const out = await run(source, a, { signal: ctl.signal });
    expect(ctl.signal.aborted).toBe(true);
    const result = await expectRegistered(out, md5);
    await leftovers.expectUnchanged(nothing, producedBy(out.events, env.glance!.url));
    await deleteGlanceImage(env.glance!.url, result.imageId);
    await leftovers.expectUnchanged(nothing);
  }, 120_000);

  it('cancelled before the call reaches Glance: CANCELLED, the Glance image and the data gone', async () => {
    const a = env.clusters.a;
    const disk = uniqueName('amb-abort-held');
    const source = await makeDisk(a, disk, 32, 8);
    const nothing = await leftovers.snapshot();
    const ctl = new AbortController();
    proxy.reset('never-forward');
    proxy.onLocationCall = () => ctl.abort();
    const out = await run(source, a, { signal: ctl.signal });
    expect(out.error).toMatchObject({ code: 'CANCELLED' });
    expect(await glanceStatus(env.glance!.url, out.ids[0]!)).toBe('absent');
    await leftovers.expectUnchanged(nothing);
  }, 120_000);

  it('no read-back answers: the data is kept, marked, for gc; gc with Glance back finishes the run', async () => {
    const a = env.clusters.a;
    const disk = uniqueName('amb-unknown');
    const source = await makeDisk(a, disk, 32, 8);
    const md5 = await exportMd5(a, `vms/${disk}`);
    const nothing = await leftovers.snapshot();
    proxy.reset('delay-answer', 1_000);
    const out = await run(source, a);
    expect(out.error).toMatchObject({ code: 'CLEANUP_FAILED', context: expect.objectContaining({ step: 'glance-add-location' }) });
    expect(out.error?.cause).toMatchObject({ code: 'GLANCE_OUTCOME_UNKNOWN' });
    const id = out.ids[0]!;
    // Glance did commit: the data it points at is still there.
    expect((await glanceImage(id)).status).toBe('active');
    expect(await exportMd5(a, `images/${id}@snap`)).toBe(md5);
    const meta = await rbdJson<Record<string, string>>(a, ['image-meta', 'list', `images/${id}`]);
    expect(Object.keys(meta ?? {})).toEqual(['snapstore.pending']);
    // gc, asking Glance itself: the run completed; the mark, the record and the journal entry go, the data stays.
    const gc = coordinator({ source: sourceConfig(a), target: rbdTarget(a), glance: { endpoint: env.glance!.url } });
    try {
      const report = await gc.gc({});
      expect(report.seen.map((s) => s.kind)).toContain('run-record');
    } finally {
      await gc.close();
    }
    const location = `rbd://${a.fsid}/images/${id}/snap`;
    expect((await glanceImage(id)).locations?.map((l) => l.url)).toEqual([location]);
    const produced = { type: 'result' as const, runId: '', result: { imageId: id, location, glance: { id, status: 'active' } } as SnapshotResult };
    await leftovers.expectUnchanged(nothing, producedBy([produced], env.glance!.url));
    await deleteGlanceImage(env.glance!.url, id);
    await leftovers.expectUnchanged(nothing);
  }, 180_000);

  it('no read-back answers and the call never reached Glance: gc deletes the Glance image, then the data', async () => {
    const a = env.clusters.a;
    const disk = uniqueName('amb-unknown-held');
    const source = await makeDisk(a, disk, 32, 8);
    const nothing = await leftovers.snapshot();
    proxy.reset('never-forward', 1_000);
    const out = await run(source, a);
    expect(out.error?.cause).toMatchObject({ code: 'GLANCE_OUTCOME_UNKNOWN' });
    const id = out.ids[0]!;
    expect(await glanceStatus(env.glance!.url, id)).toBe('queued');
    const gc = coordinator({ source: sourceConfig(a), target: rbdTarget(a), glance: { endpoint: env.glance!.url } });
    try {
      await gc.gc({});
    } finally {
      await gc.close();
    }
    expect(await glanceStatus(env.glance!.url, id)).toBe('absent');
    await leftovers.expectUnchanged(nothing);
  }, 180_000);
});
