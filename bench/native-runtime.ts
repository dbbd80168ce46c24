// Benchmark (not a test): the addon's run-time figures that test/native/runtime.test.ts used to assert —
// RSS growth over 1000 open/close cycles after warm-up (target < 30 MB), and the worst event-loop lag
// (less run-queue wait, scripts/lag-monitor.mjs) during 64 concurrent 4 MiB reads and during the flatten
// of a 1 GiB clone with 256 MiB written (target < 50 ms each). Exits 1 when a target is missed.
//
//   npm run bench -- build/bench/native-runtime.js
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster } from 'ceph-rbd-napi';
import { startCluster, stopCluster } from '../scripts/testbed.mjs';
import { printTable, saveJson, timed, withLag } from './lib.js';

const MiB = 1024 * 1024;
const RSS_TARGET_MB = 30;
const LAG_TARGET_MS = 50;

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

async function main(): Promise<number> {
  const own = await mkdtemp(join(tmpdir(), 'snapstore-bench-native-'));
  try {
    const info = await startCluster(join(own, 'cluster'), { cloneV2: true });
    const cluster = await Cluster.connect({ confPath: info.conf, user: 'admin' });
    const io = await cluster.openIoctx('vms');
    try {
      // 1000 open/close cycles, after 100 of warm-up.
      await io.createImage('cycles', 8 * MiB);
      const cycle = async (n: number) => {
        for (let i = 0; i < n; i++) {
          const image = await io.openImage('cycles', { readOnly: i % 2 === 0 });
          if (i % 10 === 0) await image.read(0, 4096);
          await image.close();
        }
      };
      await cycle(100);
      gc();
      const rssBefore = process.memoryUsage().rss;
      const [cycleSeconds] = await timed(() => cycle(1000));
      gc();
      await new Promise((r) => setTimeout(r, 100));
      const rssGrowth = process.memoryUsage().rss - rssBefore;

      // A 1 GiB parent with 64 distinct 4 MiB chunks written, its protected snapshot, and a clone of it.
      await io.createImage('parent', 1024 * MiB, { features: ['layering', 'deep-flatten'] });
      const parent = await io.openImage('parent');
      for (let i = 0; i < 64; i++) {
        const piece = Buffer.alloc(4 * MiB, (i % 250) + 1);
        piece.writeUInt32BE(i, 0);
        await parent.write(i * 4 * MiB, piece);
      }
      await parent.snapCreate('base');
      await parent.snapProtect('base');
      await parent.close();
      const reader = await io.openImage('parent', { snapshot: 'base' });
      const buffers = Array.from({ length: 64 }, () => Buffer.allocUnsafe(4 * MiB));
      gc();
      const [readLag, [readSeconds]] = await withLag(() => timed(() => Promise.all(buffers.map((b, i) => reader.read(i * 4 * MiB, 4 * MiB, b)))));
      await reader.close();
      await io.clone('parent', 'base', io, 'child', { features: ['layering', 'deep-flatten'] });
      const child = await io.openImage('child');
      gc();
      const [flattenLag, [flattenSeconds]] = await withLag(() => timed(() => child.flatten({ onProgress: () => {} })));
      await child.close();

      const rows = [
        { measure: '1000 open/close cycles, RSS growth MB', value: rssGrowth / 1e6, target: `< ${RSS_TARGET_MB}`, seconds: cycleSeconds },
        { measure: '64 concurrent 4 MiB reads, worst lag ms (own)', value: readLag.worstOwnMs, target: `< ${LAG_TARGET_MS}`, seconds: readSeconds },
        { measure: 'flatten 1 GiB clone (256 MiB written), worst lag ms (own)', value: flattenLag.worstOwnMs, target: `< ${LAG_TARGET_MS}`, seconds: flattenSeconds },
      ];
      printTable('ceph-rbd-napi at run time', rows);
      const met = rssGrowth / 1e6 < RSS_TARGET_MB && readLag.worstOwnMs < LAG_TARGET_MS && flattenLag.worstOwnMs < LAG_TARGET_MS;
      saveJson('native-runtime', { rows, met });
      return met ? 0 : 1;
    } finally {
      await io.close();
      await cluster.close();
    }
  } finally {
    await stopCluster(join(own, 'cluster')).catch(() => {});
    await rm(own, { recursive: true, force: true });
  }
}

process.exitCode = await main();
