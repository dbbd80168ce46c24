// What no glance-api here can be made to do — answer 401 (no keystone), 5xx on demand, stall or hang, echo a
// token back, answer a non-JSON body, or speak image API 2.17 (Debian 12's Glance has 2.16) — played by a
// FAKE HTTP server on 127.0.0.1; each test's name says which. Everything else runs against a real
// glance-api (413, store ids and 206 ranges: configured-glance.test.ts).
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
  GlanceUnauthorized,
  GlanceUnavailable,
} from '../../src/glance/index.js';
import { freePort } from '../../scripts/testbed.mjs';
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
  it('sends the static token as X-Auth-Token and maps 401 to GlanceUnauthorized without leaking it (fake: 401 needs keystone)', async () => {
    handler = (_req, res) => json(res, 401, { message: 'The request you have made requires authentication.' });
    const err = await client().getImage('x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GlanceUnauthorized);
    expect(err).toMatchObject({ code: 'GLANCE_UNAUTHORIZED', status: 401 });
    expect(seen[0]?.headers['x-auth-token']).toBe(TOKEN);
    expect(seen).toHaveLength(1);
    expectNoToken(err);
  });

  it('asks a token provider before every request (fake: records the headers it was sent)', async () => {
    let n = 0;
    handler = (_req, res) => json(res, 200, { id: 'x', status: 'queued' });
    const c = client({ token: async () => `tok-${++n}` });
    await c.getImage('x');
    await c.getImage('x');
    expect(seen.map((s) => s.headers['x-auth-token'])).toEqual(['tok-1', 'tok-2']);

    const failing = client({ token: () => Promise.reject(new Error('keystone down')) });
    const err = await failing.getImage('x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GlanceTokenUnavailable);
    expect(seen).toHaveLength(2);
  });

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

  it('with image API 2.17, registers locations by POST with the hashes, once /versions is cached (fake: image API 2.17)', async () => {
    handler = (req, res) => {
      if (req.url === '/versions') {
        json(res, 200, {
          versions: [
            { id: 'v2.17', status: 'CURRENT' },
            { id: 'v2.16', status: 'SUPPORTED' },
          ],
        });
      } else if (req.method === 'POST' && req.url === '/v2/images/img/locations') {
        res.writeHead(202);
        res.end();
      } else if (req.method === 'GET' && req.url === '/v2/images/img') {
        json(res, 200, { id: 'img', status: 'active' });
      } else {
        json(res, 400, { message: `unexpected ${req.method} ${req.url}` });
      }
    };
    const c = client();
    expect(await c.supportsLocationsApi()).toBe(true);
    const result = await c.addLocation('img', 'rbd://fsid/images/x/snap', {
      expectedFsid: 'fsid',
      osHashAlgo: 'sha512',
      osHashValue: 'ab',
    });
    expect(result).toMatchObject({ api: 'post', validationData: { status: 'deferred' }, image: { status: 'active' } });
    expect(seen.map((s) => `${s.method} ${s.url}`)).toEqual([
      'GET /versions',
      'POST /v2/images/img/locations',
      'GET /v2/images/img',
    ]);
    expect(JSON.parse(seen[1]!.body)).toEqual({
      url: 'rbd://fsid/images/x/snap',
      validation_data: { os_hash_algo: 'sha512', os_hash_value: 'ab' },
    });
    // /versions is asked once per client.
    await c.addLocation('img', 'rbd://fsid/images/x/snap');
    expect(seen.filter((s) => s.url === '/versions')).toHaveLength(1);
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
});
