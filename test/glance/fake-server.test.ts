// What no real glance-api can be made to do on demand — answer 5xx, stall or hang mid-body, echo a token
// back in an error page, answer a non-JSON body (a proxy's page) — played by a FAKE HTTP server on
// 127.0.0.1; each test's name says which. Everything else runs against a real glance-api: 413, store ids
// and 206 ranges (configured-glance.test.ts); 401 and its one retry with a fresh token (behind a real
// Keystone, test/keystone/tokens.test.ts); image API 2.17's POST /locations, its 409, its task and the
// service role (Glance 30, test/glance30/); the token provider asked per request (below).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  GlanceClient,
  GlanceError,
  GlanceInvalidResponse,
  GlanceNotFound,
  GlanceRequestFailed,
  GlanceServerError,
  GlanceTimeout,
  GlanceTokenUnavailable,
  GlanceUnavailable,
} from '../../src/glance/index.js';
import { freePort } from '../../scripts/testbed.mjs';
import { recordingDispatcher } from '../keystone/helpers.js';
import { testbed } from '../support/testbed.js';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

const TOKEN = 'gAAAAABsecret-token-value-9f8e7d6c5b4a';
let server: Server;
let base: string;
let handler: Handler;
let seen: Seen[] = [];
const clients: GlanceClient[] = [];

function client(options: Partial<ConstructorParameters<typeof GlanceClient>[0]> = {}): GlanceClient {
  const c = new GlanceClient({ endpoint: base, token: TOKEN, retryDelayMs: 10, ...options });
  clients.push(c);
  return c;
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

function expectNoToken(err: unknown): void {
  expect(err).toBeInstanceOf(GlanceError);
  const e = err as GlanceError;
  expect(e.message).not.toContain(TOKEN);
  expect(JSON.stringify(e)).not.toContain(TOKEN);
  expect(String(e.cause)).not.toContain(TOKEN);
  expect(String(e.stack)).not.toContain(TOKEN);
  expect(e.body ?? '').not.toContain(TOKEN);
}

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      handler(req, res, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterEach(() => {
  seen = [];
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

describe('GlanceClient against a FAKE server (statuses real Glance cannot produce here)', () => {
  it('keeps the token out of errors even when the server echoes it back in the body (fake: echoes the token)', async () => {
    handler = (req, res) => {
      res.writeHead(404, { 'content-type': 'text/html' });
      res.end(`<html><body><h1>404</h1>no image; you sent ${String(req.headers['x-auth-token'])}</body></html>`);
    };
    const err = await client().getImage('x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GlanceNotFound);
    expect((err as GlanceError).body).toMatch(/^404 no image; you sent \[redacted\]$/);
    expectNoToken(err);
  });

  it('retries a GET on 5xx with backoff and succeeds when the server recovers (fake: 5xx on demand)', async () => {
    let calls = 0;
    handler = (_req, res) =>
      ++calls < 3 ? json(res, 503, { message: 'busy' }) : json(res, 200, { id: 'x', status: 'active' });
    const image = await client({ retries: 2 }).getImage('x');
    expect(image.status).toBe('active');
    expect(seen).toHaveLength(3);
  });

  it('gives up on 5xx after the retries with GlanceServerError; a POST on 5xx is not retried (fake: 5xx on demand)', async () => {
    handler = (_req, res) => json(res, 500, { message: 'Internal Server Error' });
    const err = await client({ retries: 2 }).getImage('x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GlanceServerError);
    expect(err).toMatchObject({ code: 'GLANCE_SERVER_ERROR', status: 500 });
    expect((err as GlanceError).context.attempts).toBe(3);
    expect(seen).toHaveLength(3);

    seen = [];
    const post = await client({ retries: 2 }).createImage({ name: 'n' }).catch((e: unknown) => e);
    expect(post).toBeInstanceOf(GlanceServerError);
    expect(seen).toHaveLength(1);
  });

  it('maps a server that never answers to GlanceTimeout (fake: never answers)', async () => {
    handler = () => {
      // Never respond.
    };
    const started = Date.now();
    const err = await client({ timeoutMs: 300, retries: 0 }).getImage('x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GlanceTimeout);
    expect(err).toMatchObject({ code: 'GLANCE_TIMEOUT', method: 'GET' });
    // The timeout must fire (the server never answers): a bound the behaviour itself sets, kept wide.
    expect(Date.now() - started).toBeLessThan(10_000);
    expectNoToken(err);
  });

  it('surfaces a download that stalls mid-body as GlanceTimeout on the stream (fake: stalls mid-body)', async () => {
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': '1000000' });
      res.write(Buffer.alloc(1000));
    };
    const download = await client({ timeoutMs: 300 }).download('x');
    expect(download.length).toBe(1_000_000);
    let got = 0;
    const err = await (async () => {
      for await (const chunk of download.stream) got += (chunk as Buffer).length;
    })().catch((e: unknown) => e);
    expect(got).toBe(1000);
    expect(err).toBeInstanceOf(GlanceTimeout);
    expect((err as GlanceTimeout).context.phase).toBe('download');
  });

  it('maps an aborted signal to GlanceRequestFailed (failure aborted), during a request or a backoff (fake: never answers)', async () => {
    handler = () => {
      // Never respond: only the signal ends this request.
    };
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const err = await client({ timeoutMs: 30_000 }).getImage('x', { signal: controller.signal }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GlanceRequestFailed);
    expect((err as GlanceRequestFailed).context).toMatchObject({ failure: 'aborted', phase: 'request' });

    const backingOff = new AbortController();
    setTimeout(() => backingOff.abort(), 100);
    const started = Date.now();
    // A 30 s backoff that the abort must cut short: the bound is half of one backoff, wide for a loaded machine.
    const refused = await client({ endpoint: `http://127.0.0.1:${await freePort()}`, retries: 5, retryDelayMs: 30_000 })
      .getImage('x', { signal: backingOff.signal })
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(GlanceRequestFailed);
    expect((refused as GlanceRequestFailed).context).toMatchObject({ failure: 'aborted', phase: 'backoff', attempts: 1 });
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it('rejects a non-JSON success body with GlanceInvalidResponse (fake: a proxy login page)', async () => {
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html>proxy login</html>');
    };
    await expect(client().getImage('x')).rejects.toBeInstanceOf(GlanceInvalidResponse);
  });

});

describe('GlanceClient token hygiene against the real glance-api', () => {
  const env = testbed();

  it('keeps the token out of a real 404 and of a refused connection', async () => {
    const real = client({ endpoint: env.glance.url });
    const notFound = await real.getImage('00000000-0000-4000-8000-000000000001').catch((e: unknown) => e);
    expect(notFound).toBeInstanceOf(GlanceNotFound);
    expectNoToken(notFound);

    const refused = await client({ endpoint: `http://127.0.0.1:${await freePort()}`, retries: 1 })
      .getImage('x')
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(GlanceUnavailable);
    expectNoToken(refused);
  });

  it('asks a token provider before every request, and a failing provider sends nothing', async () => {
    const rec = recordingDispatcher();
    let n = 0;
    try {
      const c = client({ endpoint: env.glance.url, token: async () => `tok-${++n}`, dispatcher: rec.dispatcher });
      await c.versions();
      await c.listAllImages({ pageSize: 1, name: 'no-such-image-name' });
      expect(rec.sent.map((s) => s.token)).toEqual(['tok-1', 'tok-2']);

      const failing = client({ endpoint: env.glance.url, token: () => Promise.reject(new Error('keystone down')), dispatcher: rec.dispatcher });
      const err = await failing.getImage('x').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GlanceTokenUnavailable);
      expect(rec.sent).toHaveLength(2);
    } finally {
      await rec.close();
    }
  });
});
