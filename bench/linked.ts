// Benchmark (not a test): the three flatten modes of a direct snapshot side by side (issue 22) — for a
// 16 GiB disk with 1 GiB written, the time until the image is usable (snapshot() returns) and the bytes
// clients wrote to the OSD for it (its op_w_in_bytes + op_rw_in_bytes perf counters) with `flatten: 'never'`
// (linked: a clone that copies nothing), `'background'` (instant: a clone now, its flatten later — not run
// here, so its bytes are those until usable) and `'sync'` (a clone flattened before it returns). Rounds
// alternate the order of the modes; each image is deleted (through the image store) before the next run,
// so every run starts from the same disk. Targets: never's time-to-usable within 1.5x of background's;
// never's OSD bytes under 1% of sync's. Exits 1 when one is missed. No Glance: registering costs the same
// in every mode and would only add its noise.
//
//   npm run bench:linked                  (or npm run bench -- build/bench/linked.js)
//   BENCH_RUNS (3), BENCH_DISK_GIB (16), BENCH_WRITTEN_MIB (1024) choose the size of the run.
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCluster, stopCluster, type ClusterInfo } from '../scripts/testbed.mjs';
import { SnapshotCoordinator } from '../src/coordinator/index.js';
import { RbdStore } from '../src/drivers/rbd/index.js';
import { median, osdWrittenBytes, printTable, rbd, saveJson, timed, writtenBytes } from './lib.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const DISK_GIB = Number(process.env.BENCH_DISK_GIB ?? 16);
const WRITTEN_MIB = Number(process.env.BENCH_WRITTEN_MIB ?? 1024);
const MODES = ['never', 'background', 'sync'] as const;
type Mode = (typeof MODES)[number];
const TARGET_TIME_RATIO = 1.5;
const TARGET_BYTES_RATIO = 0.01;

/**
 * A copy of the cluster's ceph.conf whose nova section has the trash option the linked path requires
 * (`rbd_move_parent_to_trash_on_remove`, read as nova's client reads it).
 */
function novaConfWithTrash(cluster: ClusterInfo): string {
  const conf = `${cluster.conf}.linked`;
  const text = readFileSync(cluster.conf, 'utf8');
  if (!text.includes('[client.nova]\n')) throw new Error(`${cluster.conf} has no [client.nova] section`);
  writeFileSync(conf, text.replace('[client.nova]\n', '[client.nova]\nrbd_move_parent_to_trash_on_remove = true\n'));
  return conf;
}

interface Measured {
  seconds: Record<Mode, number[]>;
  bytes: Record<Mode, number[]>;
}

/** RUNS rounds of one snapshot per mode, the order rotating each round; each image deleted after its run. */
async function measure(cluster: ClusterInfo, c: SnapshotCoordinator, store: RbdStore, disk: string): Promise<Measured> {
  const out: Measured = { seconds: { never: [], background: [], sync: [] }, bytes: { never: [], background: [], sync: [] } };
  for (let round = 0; round < RUNS; round++) {
    const order = MODES.map((_, i) => MODES[(i + round) % MODES.length]!);
    for (const mode of order) {
      const before = await osdWrittenBytes(cluster);
      const [s, result] = await timed(() => c.snapshot(disk, { flatten: mode }));
      out.bytes[mode].push((await osdWrittenBytes(cluster)) - before);
      out.seconds[mode].push(s);
      // Without a ceph-mgr, a background flatten is left to snapstore's flattener (`pending`).
      const expected = mode === 'sync' ? 'done' : mode === 'never' ? 'never' : 'pending';
      if (result.method !== 'direct' || result.flatten !== expected) {
        throw new Error(`flatten ${mode} gave method ${result.method}, flatten ${result.flatten}`);
      }
      // The clone goes with its `snap`; librbd drops the disk's trashed snapshot with the last clone.
      await store.delete(result.location);
    }
  }
  return out;
}

function rows(m: Measured): Array<Record<string, string | number>> {
  const row = (label: string, mode: Mode, note = '') => ({
    mode: label,
    'time to usable, median s': median(m.seconds[mode]),
    'bytes written to the OSD, median': median(m.bytes[mode]),
    MiB: median(m.bytes[mode]) / 2 ** 20,
    'runs, s': `${m.seconds[mode].map((s) => s.toFixed(3)).join(' ')}${note}`,
  });
  return [row('never (linked)', 'never'), row('background (instant)', 'background', ' (its flatten not run)'), row('sync', 'sync')];
}

async function main(): Promise<number> {
  const own = await mkdtemp(join(tmpdir(), 'snapstore-bench-linked-'));
  // Memstore keeps every object in RAM, bounded by this: the disk's data, a sync image's full copy, room.
  process.env.SNAPSTORE_MEMSTORE_BYTES = String(Math.max(4096, 2 * WRITTEN_MIB + 2048) * 2 ** 20);
  try {
    const cluster = await startCluster(join(own, 'cluster'), { cloneV2: true });
    const disk = `rbd://${cluster.fsid}/vms/bench-linked`;
    await rbd(cluster, ['create', 'vms/bench-linked', '--size', `${DISK_GIB}G`], 'nova');
    await rbd(cluster, ['bench', '--io-type', 'write', '--io-size', '4M', '--io-total', `${WRITTEN_MIB}M`, '--io-pattern', 'rand', 'vms/bench-linked'], 'nova');
    const allocated = await writtenBytes(cluster, 'vms/bench-linked');
    const source = { confPath: novaConfWithTrash(cluster), user: 'nova', pool: 'vms', connectTimeoutMs: 10_000 };
    // The image store's user must read `vms` (a linked image reads through to the disk): admin here.
    const target = { kind: 'rbd' as const, confPath: cluster.conf, user: 'admin', pool: 'images', chunkSizeMiB: 8, thinProvisioning: true, connectTimeoutMs: 10_000 };
    const c = new SnapshotCoordinator({ source, target });
    const store = new RbdStore({ confPath: cluster.conf, user: 'admin', pool: 'images' });
    let m: Measured;
    try {
      // Connecting and learning the cluster (clone format, the linked preconditions) happen once per
      // coordinator, not per snapshot; check() also fails here, not mid-run, when a precondition is NO.
      const plan = await c.check(disk);
      if (!plan.linked?.possible) throw new Error(`linked snapshots not possible: ${JSON.stringify(plan.linked?.reasons)}`);
      m = await measure(cluster, c, store, disk);
    } finally {
      await Promise.all([c.close(), store.close()]);
    }
    const t = { never: median(m.seconds.never), background: median(m.seconds.background) };
    const b = { never: median(m.bytes.never), sync: median(m.bytes.sync) };
    printTable(`Flatten modes: a ${DISK_GIB} GiB disk with ${WRITTEN_MIB} MiB written (${(allocated / 2 ** 20).toFixed(0)} MiB allocated), ${RUNS} alternating rounds`, rows(m));
    const timeRatio = t.never / t.background;
    const bytesRatio = b.never / b.sync;
    const met = timeRatio <= TARGET_TIME_RATIO && bytesRatio < TARGET_BYTES_RATIO;
    process.stdout.write(
      `\nnever / background time to usable: ${timeRatio.toFixed(2)}x (target ≤ ${TARGET_TIME_RATIO}x); ` +
        `never / sync OSD bytes: ${(bytesRatio * 100).toFixed(3)}% (target < ${TARGET_BYTES_RATIO * 100}%): ${met ? 'met' : 'MISSED'}\n`,
    );
    saveJson('linked', { runs: RUNS, diskGiB: DISK_GIB, writtenMiB: WRITTEN_MIB, allocated, ...m, timeRatio, bytesRatio, met });
    return met ? 0 : 1;
  } finally {
    await stopCluster(join(own, 'cluster')).catch(() => {});
    await rm(own, { recursive: true, force: true });
  }
}

process.exitCode = await main();
