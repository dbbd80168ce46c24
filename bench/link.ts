// A limited link between sites, for benchmarks: every packet to or from one test cluster's daemons (its
// mon and OSD ports on 127.0.0.1) goes through one HTB class on `lo` at a fixed rate, both directions
// together (one link's capacity, as a shared WAN link would be). The rest of `lo` is unlimited: the other
// cluster, and whatever runs beside it, stay local — and so does the cluster's own traffic (its mgr's
// connections to its OSDs: `exemptOwnTraffic`), which in a real site never leaves it. Needs root (tc, ss);
// the qdisc is removed by `close()`.
//
// Which cluster sits behind the link says where snapstore runs: limiting the image store's cluster puts
// snapstore beside the disks (nova-compute snapshotting into a store at another site); limiting the
// disks' cluster puts it beside the store.
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ClusterInfo } from '../scripts/testbed.mjs';

const run = promisify(execFile);

export interface Link {
  /** The ports put behind the link. */
  ports: number[];
  /** Bytes that went through the link since it was set up (the class's counter). */
  bytes(): Promise<number>;
  /**
   * Takes the cluster's connections between its own daemons (a mgr's to its OSDs) off the link: their
   * client-side ports are ephemeral, so they are found (ss) among the established connections of the
   * cluster's daemons (their pid files) and exempted one by one. The link also does this every 250 ms on
   * its own (a mgr module opens connections of its own when a task starts).
   */
  exemptOwnTraffic(): Promise<number>;
  close(): Promise<void>;
}

/** The cluster's daemons' ports: the mon's, and every address an OSD listens on (public and cluster). */
async function clusterPorts(cluster: ClusterInfo): Promise<number[]> {
  const { stdout } = await run('ceph', ['-c', cluster.conf, '--id', 'admin', 'osd', 'dump', '--format', 'json'], { maxBuffer: 16 << 20 });
  const dump = JSON.parse(stdout) as { osds: Array<Record<string, { addrvec?: Array<{ addr: string }> }>> };
  const ports = new Set<number>([cluster.port]);
  for (const osd of dump.osds) {
    for (const key of ['public_addrs', 'cluster_addrs', 'heartbeat_back_addrs', 'heartbeat_front_addrs']) {
      for (const a of osd[key]?.addrvec ?? []) ports.add(Number(a.addr.split(':').pop()));
    }
  }
  return [...ports].filter((p) => Number.isInteger(p) && p > 0);
}

/**
 * Puts `cluster` behind a link of `mibPerSecond` MiB/s. @throws when tc is missing or refused (not root):
 * the benchmark then says so instead of printing figures of an unlimited link.
 */
export async function limitLink(cluster: ClusterInfo, mibPerSecond: number): Promise<Link> {
  const ports = await clusterPorts(cluster);
  const tc = (...args: string[]) => run('tc', args);
  const rate = `${Math.round(mibPerSecond * 8 * 1.048576)}mbit`;
  await tc('qdisc', 'add', 'dev', 'lo', 'root', 'handle', '1:', 'htb', 'default', '99');
  try {
    await tc('class', 'add', 'dev', 'lo', 'parent', '1:', 'classid', '1:10', 'htb', 'rate', rate, 'ceil', rate, 'burst', '256k', 'cburst', '256k');
    await tc('class', 'add', 'dev', 'lo', 'parent', '1:', 'classid', '1:99', 'htb', 'rate', '100gbit');
    for (const port of ports) {
      for (const dir of ['sport', 'dport']) {
        await tc('filter', 'add', 'dev', 'lo', 'protocol', 'ip', 'parent', '1:', 'prio', '10', 'u32', 'match', 'ip', dir, String(port), '0xffff', 'flowid', '1:10');
      }
    }
  } catch (err) {
    await tc('qdisc', 'del', 'dev', 'lo', 'root').catch(() => {});
    throw err;
  }
  const sent = async () => {
    const { stdout } = await tc('-s', 'class', 'show', 'dev', 'lo', 'classid', '1:10');
    return Number(/Sent (\d+) bytes/.exec(stdout)?.[1] ?? 0);
  };
  const base = await sent();
  const exempted = new Set<number>();
  const pids = daemonPids(cluster);
  let scan: Promise<number> = Promise.resolve(0);
  const link: Link = {
    ports,
    bytes: async () => (await sent()) - base,
    exemptOwnTraffic: () => {
      scan = scan.then(exemptNew, exemptNew);
      return scan;
    },
    close: async () => {
      clearInterval(timer);
      await scan.catch(() => 0);
      await tc('qdisc', 'del', 'dev', 'lo', 'root');
    },
  };
  const timer = setInterval(() => void link.exemptOwnTraffic().catch(() => 0), 250);
  timer.unref();
  await link.exemptOwnTraffic();
  return link;

  async function exemptNew(): Promise<number> {
    const { stdout } = await run('ss', ['-tnpH', 'state', 'established'], { maxBuffer: 16 << 20 });
    for (const line of stdout.split('\n')) {
      const cols = line.trim().split(/\s+/);
      const local = Number(cols[2]?.split(':').pop());
      const peer = Number(cols[3]?.split(':').pop());
      const pid = Number(/pid=(\d+)/.exec(line)?.[1]);
      if (!pids.has(pid) || !ports.includes(peer) || ports.includes(local) || exempted.has(local)) continue;
      exempted.add(local);
      for (const dir of ['sport', 'dport']) {
        await tc('filter', 'add', 'dev', 'lo', 'protocol', 'ip', 'parent', '1:', 'prio', '5', 'u32', 'match', 'ip', dir, String(local), '0xffff', 'flowid', '1:99');
      }
    }
    return exempted.size;
  }
}

/** The pids of the cluster's daemons (the test bed's pid files under DIR/run). */
function daemonPids(cluster: ClusterInfo): Set<number> {
  const dir = join(cluster.dir, 'run');
  const pids = new Set<number>();
  for (const f of readdirSync(dir)) {
    if (f.endsWith('.pid')) pids.add(Number(readFileSync(join(dir, f), 'utf8').trim()));
  }
  return pids;
}
