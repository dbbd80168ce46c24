// Benchmark (not a test): upload 1 GiB to a real glance-api with GlanceClient, streamed from a file, next to
// curl uploading the same file, and the client's peak RSS. Fails (exit 1) if RSS exceeds 150 MB.
//
//   npm run bench -- build/bench/glance-upload.js
//   SNAPSTORE_TESTBED=/path/testbed.json ...   reuse a running test bed instead of starting one
//   GLANCE_BENCH_MIB=256 ...                   upload size (default 1024)
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { once } from 'node:events';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { GlanceClient } from '../src/glance/index.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const SIZE = Number(process.env.GLANCE_BENCH_MIB ?? 1024) * MiB;
const RSS_LIMIT = 150 * 1000 * 1000;

interface Testbed {
  glance: { url: string };
  clusters: { a: { conf: string } };
}
interface TestbedModule {
  up(root: string): Promise<Testbed>;
  down(root: string): Promise<void>;
  load(file: string): Testbed;
}

/** The repository root: this file runs from bench/ (tsx) or build/bench/ (compiled). */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'snapstore') {
      return dir;
    }
    const parent = dirname(dir);
    if (parent === dir) return process.cwd();
    dir = parent;
  }
}

async function writeRandomFile(path: string, bytes: number): Promise<void> {
  const out = createWriteStream(path);
  for (let off = 0; off < bytes; off += 4 * MiB) {
    if (!out.write(randomBytes(Math.min(4 * MiB, bytes - off)))) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}

/** Samples RSS every 20 ms while `work` runs; returns the work's duration and the peak. */
async function measured(work: () => Promise<void>): Promise<{ seconds: number; peakRss: number }> {
  let peakRss = process.memoryUsage.rss();
  const timer = setInterval(() => {
    peakRss = Math.max(peakRss, process.memoryUsage.rss());
  }, 20);
  const started = process.hrtime.bigint();
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  peakRss = Math.max(peakRss, process.memoryUsage.rss());
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, peakRss };
}

async function main(): Promise<void> {
  const root = repoRoot();
  const testbed = (await import(pathToFileURL(join(root, 'scripts', 'testbed.mjs')).href)) as TestbedModule;
  const reuse = process.env.SNAPSTORE_TESTBED;
  const work = await mkdtemp(join(tmpdir(), 'snapstore-bench-glance-'));
  const bedDir = join(work, 'bed');
  const env = reuse ? testbed.load(reuse) : await testbed.up(bedDir);
  const client = new GlanceClient({ endpoint: env.glance.url, timeoutMs: 300_000 });
  const created: string[] = [];
  try {
    const file = join(work, 'data');
    await writeRandomFile(file, SIZE);
    const newImage = async (name: string) => {
      const image = await client.createImage({ name, diskFormat: 'raw', containerFormat: 'bare' });
      created.push(image.id);
      return image.id;
    };

    // Baseline: curl streaming the same file (its memory is its own process's, not counted here).
    const viaCurl = async () => {
      const id = await newImage('bench-curl');
      const m = await measured(async () => {
        await run('curl', [
          '-fsS', '-X', 'PUT', '-H', 'content-type: application/octet-stream', '-T', file,
          `${env.glance.url}/v2/images/${id}/file`,
        ]);
      });
      await client.deleteImage(id);
      return m;
    };
    const viaClient = async () => {
      const id = await newImage('bench-client');
      const m = await measured(() => client.upload(id, createReadStream(file), { size: SIZE }));
      const stored = await client.getImage(id);
      if (stored.status !== 'active' || stored.size !== SIZE) {
        throw new Error(`upload did not store ${SIZE} bytes: ${stored.status} ${String(stored.size)}`);
      }
      await client.deleteImage(id);
      return m;
    };

    global.gc?.();
    const baseRss = process.memoryUsage.rss();
    // ABBA order, so neither side always runs on a warmer (or fuller) OSD.
    const curlRuns = [await viaCurl()];
    const clientRuns = [await viaClient(), await viaClient()];
    curlRuns.push(await viaCurl());
    const mean = (xs: Array<{ seconds: number }>) => xs.reduce((a, x) => a + x.seconds, 0) / xs.length;
    const curl = { seconds: mean(curlRuns) };
    const ours = { seconds: mean(clientRuns), peakRss: Math.max(...clientRuns.map((r) => r.peakRss)) };

    const mb = (n: number) => (n / 1e6).toFixed(1);
    const rate = (s: number) => (SIZE / MiB / s).toFixed(0);
    const rows = [
      ['upload', 'seconds', 'MiB/s', 'peak RSS MB (this process)', 'ratio to curl'],
      ['curl -T file', curl.seconds.toFixed(2), rate(curl.seconds), '(separate process)', '1.00'],
      [
        'GlanceClient.upload(file stream)',
        ours.seconds.toFixed(2),
        rate(ours.seconds),
        `${mb(ours.peakRss)} (+${mb(ours.peakRss - baseRss)})`,
        (ours.seconds / curl.seconds).toFixed(2),
      ],
    ];
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    console.log(`Glance upload of ${SIZE / MiB} MiB to ${env.glance.url} (mean of 2 runs each)`);
    for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join('  '));

    const results = join(root, 'bench', 'results');
    await mkdir(results, { recursive: true });
    await writeFile(
      join(results, 'glance-upload.json'),
      JSON.stringify(
        { bytes: SIZE, curlSeconds: curl.seconds, clientSeconds: ours.seconds, clientPeakRss: ours.peakRss, baseRss },
        null,
        2,
      ),
    );
    if (ours.peakRss > RSS_LIMIT) {
      console.error(`FAIL: peak RSS ${mb(ours.peakRss)} MB exceeds ${mb(RSS_LIMIT)} MB`);
      process.exitCode = 1;
    }
  } finally {
    for (const id of created) await client.deleteImage(id, { ignoreMissing: true }).catch(() => {});
    await client.close();
    if (!reuse) await testbed.down(bedDir);
    await rm(work, { recursive: true, force: true });
  }
}

await main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
