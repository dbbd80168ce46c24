// Benchmark (not a test): RbdStore.add of a 2 GiB stream (zeros with 1/16 of it random data, as a raw
// instance disk looks) — its time next to `rbd import` of the same bytes from a pipe, the pool space both
// use, and snapstore's peak RSS. Exits 1 when the peak RSS reaches 200 MB.
//
//   npm run bench -- build/bench/store-add-rss.js
//   SNAPSTORE_TESTBED=/path/testbed.json ...   use cluster a of a running test bed instead of starting one
//   STORE_BENCH_MIB=512 ...                    stream size (default 2048)
import { spawn } from 'node:child_process';
import { randomBytes, randomFillSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import type { ClusterInfo } from '../scripts/testbed.mjs';
import { InlineHasher } from '../src/drivers/hashing.js';
import { RbdStore } from '../src/drivers/rbd.js';
import { peakRssMiB, printTable, rbd, repoRoot, saveJson, timed } from './lib.js';

const MiB = 1024 * 1024;
const SIZE = Number(process.env.STORE_BENCH_MIB ?? 2048) * MiB;
const PIECE = 8 * MiB;
const RSS_LIMIT_MB = 200;

interface TestbedModule {
  startCluster(dir: string, opts?: { cloneV2?: boolean }): Promise<ClusterInfo>;
  stopCluster(dir: string): Promise<void>;
  load(file: string): { clusters: { a: ClusterInfo } };
}

/**
 * The benchmark's disk image as a byte stream: every 16th 8 MiB piece random, the rest zeros. Like a socket,
 * the source reuses its buffers (a ring of three refilled with random bytes) and delivers asynchronously,
 * so the peak RSS measured is snapstore's, not garbage the source makes for V8 to collect.
 */
function disk(): Readable {
  const zero = Buffer.alloc(PIECE);
  const ring = [Buffer.allocUnsafe(PIECE), Buffer.allocUnsafe(PIECE), Buffer.allocUnsafe(PIECE)];
  let offset = 0;
  let index = 0;
  return new Readable({
    read() {
      if (offset >= SIZE) {
        this.push(null);
        return;
      }
      const length = Math.min(PIECE, SIZE - offset);
      let piece = zero;
      if (index % 16 === 3) {
        piece = ring[index % ring.length]!;
        randomFillSync(piece);
      }
      offset += length;
      index++;
      // Pushed later, as a socket delivers: a push inside read() makes Readable.read() concatenate pieces.
      setImmediate(() => this.push(piece.subarray(0, length)));
    },
  });
}

/** `rbd import - images/NAME` reading the same bytes from its stdin. */
function rbdImport(cluster: ClusterInfo, name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('rbd', ['-c', cluster.conf, '--id', 'admin', 'import', '--no-progress', '--object-size', '8M', '-', `images/${name}`], {
      stdio: ['pipe', 'ignore', 'inherit'],
    });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`rbd import exited ${code}`))));
    disk().pipe(child.stdin);
  });
}

async function poolUsedMiB(cluster: ClusterInfo, name: string): Promise<number> {
  const du = JSON.parse(await rbd(cluster, ['du', '--format', 'json', `images/${name}`])) as { images: Array<{ used_size: number }> };
  return du.images.reduce((sum, i) => sum + i.used_size, 0) / MiB;
}

async function main(): Promise<number> {
  const testbed = (await import(pathToFileURL(join(repoRoot, 'scripts', 'testbed.mjs')).href)) as TestbedModule;
  let cluster: ClusterInfo;
  let own: string | null = null;
  if (process.env.SNAPSTORE_TESTBED) {
    cluster = testbed.load(process.env.SNAPSTORE_TESTBED).clusters.a;
  } else {
    own = await mkdtemp(join(tmpdir(), 'snapstore-bench-store-'));
    cluster = await testbed.startCluster(join(own, 'cluster'));
  }
  const store = new RbdStore({ confPath: cluster.conf, user: 'admin', pool: 'images' });
  const suffix = randomBytes(4).toString('hex');
  const ours = `bench-store-${suffix}`;
  const theirs = `bench-import-${suffix}`;
  try {
    await store.cluster();
    const rssBefore = peakRssMiB();
    const [addSeconds, result] = await timed(() => store.add(ours, disk(), SIZE));
    const rssPeak = peakRssMiB();
    const [importSeconds] = await timed(() => rbdImport(cluster, theirs));
    const [hashSeconds] = await timed(async () => {
      // The same hashes on the JS thread alone, for comparison with the store's worker threads.
      const hasher = new InlineHasher();
      for await (const piece of disk()) hasher.update(piece as Buffer);
      await hasher.digest();
    });
    const rows = [
      {
        method: 'RbdStore.add (md5+sha512 in worker threads)',
        seconds: addSeconds,
        'MiB/s': SIZE / MiB / addSeconds,
        'pool MiB used': await poolUsedMiB(cluster, ours),
        'vs rbd import': addSeconds / importSeconds,
      },
      {
        method: 'rbd import - (CLI)',
        seconds: importSeconds,
        'MiB/s': SIZE / MiB / importSeconds,
        'pool MiB used': await poolUsedMiB(cluster, theirs),
        'vs rbd import': 1,
      },
      {
        method: 'md5+sha512 of the stream on the JS thread (no I/O)',
        seconds: hashSeconds,
        'MiB/s': SIZE / MiB / hashSeconds,
        'pool MiB used': 0,
        'vs rbd import': hashSeconds / importSeconds,
      },
    ];
    printTable(`Adding ${SIZE / MiB} MiB (1/16 random data) to RBD`, rows);
    process.stdout.write(
      `\npeak RSS: ${rssPeak.toFixed(1)} MiB (${((rssPeak * MiB) / 1e6).toFixed(1)} MB; ${rssBefore.toFixed(1)} MiB before add), limit ${RSS_LIMIT_MB} MB\n`,
    );
    saveJson('store-add-rss', { size: SIZE, rows, peakRssMiB: rssPeak, rssBeforeMiB: rssBefore, location: result.location });
    await store.delete(result.location);
    await rbd(cluster, ['rm', '--no-progress', `images/${theirs}`]);
    return (rssPeak * MiB) / 1e6 < RSS_LIMIT_MB ? 0 : 1;
  } finally {
    await store.close();
    if (own) {
      await testbed.stopCluster(join(own, 'cluster'));
      await rm(own, { recursive: true, force: true });
    }
  }
}

process.exitCode = await main();
