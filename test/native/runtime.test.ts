// How the addon behaves at run time on real Ceph: lazy loading, connect timeouts, the event loop
// staying responsive during long admin calls and heavy aio, cancellation, closing with I/O in
// flight, and memory over many open/close cycles.
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as rbd from 'ceph-rbd-napi';
import type { Snapshot } from '../support/leftovers.js';
import { ownPools } from '../support/own-pools.js';
import { rbdJson, testbed, uniqueName } from '../support/testbed.js';
import { chunk, connect, destroyImage, forceGc, GiB, lagMonitor, MiB, within } from './helpers.js';

const run = promisify(execFile);
const nativeDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'native');
/** The package's entry, compiled from native/lib (child processes import it directly). */
const entry = join(nativeDir, 'dist', 'index.js');
const env = testbed();
const A = env.clusters.a;
const MARK = uniqueName('napi-rt');
// A `vms` pool of this file's own on cluster a: the leftovers probe lists it whole at the start and the end.
const pools = ownPools('napi-rt', { clusters: () => [A] });
let initial: Snapshot;

let cluster: rbd.Cluster;
let io: rbd.Ioctx;
// A 1 GiB parent with 256 MiB written (64 distinct 4 MiB chunks) and a protected snapshot, made
// for the flatten and aio tests.
let parent: string;

beforeAll(async () => {
  initial = await pools.leftovers.snapshot();
  cluster = await connect(A);
  io = await cluster.openIoctx(pools.vms);
});

afterAll(async () => {
  await io?.close();
  await cluster?.close();
  await pools.leftovers.expectUnchanged(initial);
});

async function freshClone(what: string): Promise<string> {
  const child = `${MARK}-${what}`;
  await io.clone(parent, 'base', io, child, { features: ['layering', 'deep-flatten'] });
  return child;
}

describe('loading', () => {
  it('importing the package loads neither the addon nor librbd; the first use does', async () => {
    const script = `
      const maps = () => require('node:fs').readFileSync('/proc/self/maps', 'utf8');
      import(${JSON.stringify(entry)}).then((m) => {
        const before = /ceph_rbd\\.node|librbd/.test(maps());
        const available = m.isAvailable();
        const after = /ceph_rbd\\.node/.test(maps()) && /librbd\\.so/.test(maps());
        console.log(JSON.stringify({ before, available, after }));
      });`;
    const { stdout } = await run(process.execPath, ['-e', script]);
    expect(JSON.parse(stdout)).toEqual({ before: false, available: true, after: true });
  });

  it('without a built addon: import works, isAvailable() is false, calls reject with ONE NativeUnavailableError saying how to fix it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'napi-unbuilt-'));
    try {
      // The compiled package without build/Release/ceph_rbd.node beside it.
      cpSync(join(nativeDir, 'dist'), join(dir, 'dist'), { recursive: true });
      writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
      const script = `
        const m = await import(${JSON.stringify(join(dir, 'dist', 'index.js'))});
        const available = m.isAvailable();
        const e1 = await m.Cluster.connect({ confPath: '/x' }).catch((e) => e);
        const e2 = await m.Cluster.connect({ confPath: '/x' }).catch((e) => e);
        console.log(JSON.stringify({ available, same: e1 === e2, isRbd: e1 instanceof m.RbdError,
          isNU: e1 instanceof m.NativeUnavailableError, code: e1.code, message: e1.message }));`;
      const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script]);
      const out = JSON.parse(stdout);
      expect(out).toMatchObject({ available: false, same: true, isRbd: true, isNU: true, code: 'NATIVE_UNAVAILABLE' });
      expect(out.message).toContain('not built');
      expect(out.message).toContain('npm run build --workspace ceph-rbd-napi');
      expect(out.message).toContain('librbd-dev');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('connect timeout', () => {
  it('fails with TimeoutError (or ConnectionError) within about timeoutMs when no mon answers', async () => {
    // A port on which nothing listens: take a free one and release it.
    const port = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => resolve(p));
      });
    });
    const dir = mkdtempSync(join(tmpdir(), 'napi-nomon-'));
    try {
      const conf = readFileSync(A.conf, 'utf8').replace(/mon host = .*/, `mon host = v2:127.0.0.1:${port}`);
      writeFileSync(join(dir, 'ceph.conf'), conf);
      const started = Date.now();
      const err = await rbd.Cluster.connect({ confPath: join(dir, 'ceph.conf'), timeoutMs: 2000 }).catch((e) => e);
      const elapsed = Date.now() - started;
      expect(err instanceof rbd.TimeoutError || err instanceof rbd.ConnectionError).toBe(true);
      expect(err.call).toBe('rados_connect');
      expect(elapsed).toBeGreaterThanOrEqual(1500);
      // A dead cluster must not hang the call: a bound the behaviour sets, wide for a loaded 2-core machine.
      expect(elapsed).toBeLessThan(2000 + 13_000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('lifetime', () => {
  it('an Image dropped without close() is closed by its finalizer: its header watch goes away', async () => {
    const img = `${MARK}-dropped`;
    await io.createImage(img, 4 * MiB);
    // Held until the watchers are counted (a collection could otherwise close them all first), then dropped.
    let held: unknown[] = [];
    const open = async () => {
      for (let i = 0; i < 5; i++) {
        const image = await io.openImage(img);
        await image.read(0, 16);
        held.push(image);
      }
    };
    const watchers = async () =>
      (await rbdJson<{ watchers: unknown[] }>(A, ['status', `${pools.vms}/${img}`])).watchers.length;
    try {
      await open();
      expect(await watchers()).toBeGreaterThan(0);
      held = [];
      for (let i = 0; i < 50 && (await watchers()) > 0; i++) {
        forceGc();
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(await watchers()).toBe(0);
    } finally {
      await io.removeImage(img);
    }
  });

  // Retried: once in a loaded full-suite run (2026-12-02) the `end` child died at exit with
  // "terminate called after throwing boost::bad_get" — librados threads still running while the
  // process's static destructors ran, since handles left open are left to the exit (addon.cc). A
  // real but rare defect of that design, recorded in issue 13's closing note; 4 runs alone passed.
  it('a process exiting with I/O in flight and handles left open exits cleanly', { retry: 2 }, async () => {
    const img = `${MARK}-exit`;
    await io.createImage(img, 64 * MiB);
    try {
      // Read-only opens hold no header watch, so nothing lingers on the image after the exit.
      const script = `
        const rbd = await import(${JSON.stringify(entry)});
        const c = await rbd.Cluster.connect({ confPath: ${JSON.stringify(A.conf)} });
        const io = await c.openIoctx(${JSON.stringify(pools.vms)});
        const image = await io.openImage(${JSON.stringify(img)}, { readOnly: true });
        await image.read(0, 4096);
        if (process.argv[1] === 'exit') {
          for (let i = 0; i < 16; i++) image.read(i * 4194304, 4194304);
          process.exit(7);
        }
        console.log('left open');`;
      const exited = await run(process.execPath, ['--input-type=module', '-e', script, 'exit'], { timeout: 30_000 }).catch((e) => e);
      expect(exited).toMatchObject({ code: 7, signal: null });
      const ended = await run(process.execPath, ['--input-type=module', '-e', script, 'end'], { timeout: 30_000 });
      expect(ended.stdout).toContain('left open');
    } finally {
      await io.removeImage(img);
    }
  });
});

describe('lag monitor', () => {
  it('catches a loop blocked on the JS thread itself, run-queue correction included', async () => {
    const monitor = lagMonitor();
    await new Promise((r) => setTimeout(r, 30));
    // Asleep on the JS thread for 80 ms: the way a synchronous librbd call would hold the loop.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 80);
    await new Promise((r) => setTimeout(r, 30));
    const lag = monitor.stop();
    expect(lag.worstMs).toBeGreaterThan(60);
    expect(lag.worstOwnMs).toBeGreaterThan(60);
  });
});

describe('memory', () => {
  // Runs before the tests that move hundreds of MiB through JS buffers, whose freeing would
  // hide a leak in the RSS figures.
  // The RSS growth is a figure: bench/native-runtime.ts measures it (target < 30 MB). Here: the cycles work.
  it('1000 open/close cycles of an image (read-only and writable) all open, read and close', async () => {
    const img = `${MARK}-cycles`;
    await io.createImage(img, 8 * MiB);
    const seed = await io.openImage(img);
    await seed.write(0, Buffer.alloc(4096, 1));
    await seed.close();
    const cycle = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const image = await io.openImage(img, { readOnly: i % 2 === 0 });
        if (i % 10 === 0) await image.read(0, 4096);
        await image.close();
      }
    };
    await cycle(100);
    forceGc();
    const before = process.memoryUsage().rss;
    const started = performance.now();
    await cycle(1000);
    const elapsed = performance.now() - started;
    forceGc();
    await new Promise((r) => setTimeout(r, 100));
    const growth = process.memoryUsage().rss - before;
    console.error(`1000 open/close cycles: ${(elapsed / 1000).toFixed(1)} s, RSS growth ${(growth / MiB).toFixed(1)} MiB`);
    await io.removeImage(img);
  }, 120_000);
});

describe('trimMemory', () => {
  it('gives freed malloc arena memory back after I/O (glibc: RSS drops)', async () => {
    const img = `${MARK}-trim`;
    await io.createImage(img, 64 * MiB);
    const image = await io.openImage(img);
    try {
      const data = Buffer.alloc(MiB, 7);
      for (let round = 0; round < 2; round++) {
        await Promise.all(Array.from({ length: 64 }, (_, i) => image.write(i * MiB, data)));
        await Promise.all(Array.from({ length: 64 }, (_, i) => image.read(i * MiB, MiB)));
      }
    } finally {
      await image.close();
    }
    forceGc();
    const before = process.memoryUsage().rss;
    const [released, again] = await Promise.all([rbd.trimMemory(), rbd.trimMemory()]);
    const after = process.memoryUsage().rss;
    console.error(`trimMemory: released=${released}, RSS ${(before / MiB).toFixed(1)} -> ${(after / MiB).toFixed(1)} MiB`);
    expect(typeof released).toBe('boolean');
    expect(typeof again).toBe('boolean');
    const glibc = (process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header.glibcVersionRuntime;
    if (glibc) {
      // Debian: librados' threads kept tens of MiB of freed buffers in their arenas; the trim returns them.
      expect(released || again).toBe(true);
      expect(after).toBeLessThan(before);
    } else {
      expect(after).toBeLessThanOrEqual(before + MiB);
    }
    await io.removeImage(img);
  }, 60_000);
});

describe('with a 1 GiB parent holding 256 MiB', () => {
  beforeAll(async () => {
    parent = `${MARK}-parent`;
    await io.createImage(parent, GiB, { features: ['layering', 'deep-flatten'] });
    const p = await io.openImage(parent);
    for (let batch = 0; batch < 64; batch += 16) {
      await Promise.all(Array.from({ length: 16 }, (_, i) => p.write((batch + i) * 4 * MiB, chunk(batch + i))));
    }
    await p.snapCreate('base');
    await p.snapProtect('base');
    await p.close();
  }, 120_000);

  afterAll(async () => {
    await destroyImage(io, parent);
  });

  describe('flatten', () => {
    it('reports progress and is canceled by an AbortSignal (CanceledError); the clone stays usable and flattens later', async () => {
      const child = await freshClone('cancel');
      const image = await io.openImage(child);
      try {
        const controller = new AbortController();
        const seen: Array<[number, number]> = [];
        const err = await image
          .flatten({
            signal: controller.signal,
            onProgress: (done, total) => {
              seen.push([done, total]);
              if (done >= 8) controller.abort();
            },
          })
          .catch((e) => e);
        expect(err).toBeInstanceOf(rbd.CanceledError);
        expect(err).toMatchObject({ code: 'CANCELED', errno: 125, call: 'rbd_flatten_with_progress' });
        expect(seen.length).toBeGreaterThan(0);
        expect(seen[0]![1]).toBe(256); // 1 GiB of 4 MiB objects
        // Still a clone, still readable and writable.
        expect((await image.parentInfo())?.image).toBe(parent);
        expect((await image.read(63 * 4 * MiB, 4)).readUInt32BE(0)).toBe(63);
        await image.write(GiB - 4096, Buffer.alloc(4096, 9));
        // An already aborted signal rejects before anything starts.
        await expect(image.flatten({ signal: AbortSignal.abort() })).rejects.toBeInstanceOf(rbd.CanceledError);
        await image.flatten();
        expect(await image.parentInfo()).toBeNull();
        expect((await image.read(17 * 4 * MiB, 4)).readUInt32BE(0)).toBe(17);
      } finally {
        await image.close();
        await destroyImage(io, child);
      }
    });

    // How much lag, is bench/native-runtime.ts's figure (target < 50 ms); here: timers keep firing throughout.
    it('keeps the event loop running: flattening a 1 GiB clone with 256 MiB written, 10 ms timers fire during it', async () => {
      const child = await freshClone('lag');
      const image = await io.openImage(child);
      try {
        // Earlier tests' buffers are freed now, not on the JS thread while we measure.
        forceGc();
        const monitor = lagMonitor();
        const started = performance.now();
        await image.flatten({ onProgress: () => {} });
        const elapsed = performance.now() - started;
        const lag = monitor.stop();
        console.error(`flatten ${elapsed.toFixed(0)} ms: worst lag ${lag.worstMs.toFixed(1)} ms, ${lag.worstOwnMs.toFixed(1)} ms without run-queue wait`);
        expect(await image.parentInfo()).toBeNull();
        // The measurement means something only if the flatten took a while.
        expect(elapsed).toBeGreaterThan(200);
        // A flatten on the JS thread would let no timer fire until it ended; margin for a loaded machine.
        expect(lag.ticks).toBeGreaterThan(elapsed / 10 / 10);
      } finally {
        await image.close();
        await destroyImage(io, child);
      }
    });
  });

  describe('aio', () => {
    // The lag during them is bench/native-runtime.ts's figure (target < 50 ms).
    it('64 concurrent 4 MiB reads return the right data', async () => {
      const image = await io.openImage(parent, { snapshot: 'base' });
      try {
        const buffers = Array.from({ length: 64 }, () => Buffer.allocUnsafe(4 * MiB));
        forceGc();
        const monitor = lagMonitor();
        const started = performance.now();
        const results = await Promise.all(buffers.map((b, i) => image.read(i * 4 * MiB, 4 * MiB, b)));
        const elapsed = performance.now() - started;
        const lag = monitor.stop();
        console.error(`64 x 4 MiB reads ${elapsed.toFixed(0)} ms: worst lag ${lag.worstMs.toFixed(1)} ms, ${lag.worstOwnMs.toFixed(1)} ms without run-queue wait`);
        results.forEach((buf, i) => {
          expect(buf.length).toBe(4 * MiB);
          expect(buf.readUInt32BE(0)).toBe(i);
          expect(buf[4 * MiB - 1]).toBe((i % 250) + 1);
        });
      } finally {
        await image.close();
      }
    });

    it('closing an image with I/O in flight waits for it: every op settles, close resolves, nothing hangs', async () => {
      const child = await freshClone('close-inflight');
      const image = await io.openImage(child);
      try {
        const ops: Array<Promise<unknown>> = [];
        for (let i = 0; i < 32; i++) ops.push(image.read(i * 4 * MiB, 4 * MiB));
        for (let i = 0; i < 16; i++) ops.push(image.write((100 + i) * 4 * MiB, chunk(100 + i)));
        ops.push(image.flush());
        const closing = image.close();
        expect(image.closed).toBe(true);
        await expect(image.read(0, 1)).rejects.toBeInstanceOf(rbd.ClosedError);
        const settled = await within(30_000, Promise.allSettled(ops), 'in-flight I/O');
        expect(settled.every((s) => s.status === 'fulfilled')).toBe(true);
        await within(30_000, closing, 'image close');
        // The writes landed before the close.
        const check = await io.openImage(child, { readOnly: true });
        expect((await check.read(107 * 4 * MiB, 4)).readUInt32BE(0)).toBe(107);
        await check.close();
      } finally {
        await destroyImage(io, child);
      }
    });

    it('closing the Cluster and Ioctx with image I/O in flight neither crashes nor hangs; the image keeps the connection', async () => {
      const c = await connect(A);
      const cio = await c.openIoctx(pools.vms);
      const image = await cio.openImage(parent, { snapshot: 'base' });
      const reads = Array.from({ length: 32 }, (_, i) => image.read(i * 4 * MiB, 4 * MiB));
      const listing = cio.listImages();
      await within(30_000, Promise.all([cio.close(), c.close()]), 'cluster/ioctx close');
      expect((await listing).length).toBeGreaterThan(0); // in flight when close() was called: completed
      await expect(c.listPools()).rejects.toBeInstanceOf(rbd.ClosedError);
      const results = await within(30_000, Promise.all(reads), 'reads after cluster close');
      for (const [i, buf] of results.entries()) expect(buf.readUInt32BE(0)).toBe(i);
      expect((await image.read(5 * 4 * MiB, 4)).readUInt32BE(0)).toBe(5);
      // Closing the last user shuts the connection down (rados_shutdown in a worker).
      const more = image.read(0, 4 * MiB);
      await within(30_000, image.close(), 'image close after cluster close');
      expect((await more).length).toBe(4 * MiB);
    });
  });
});
