// A limited link between sites, for benchmarks: every packet to or from one test cluster's daemons (its
// mon and OSD ports on 127.0.0.1) goes through one HTB class on `lo` at a fixed rate, both directions
// together (one link's capacity, as a shared WAN link would be). The rest of `lo` is unlimited: the other
// cluster, and whatever runs beside it, stay local. Needs root (tc); the qdisc is removed by `close()`.
//
// Which cluster sits behind the link says where snapstore runs: limiting the image store's cluster puts
// snapstore beside the disks (nova-compute snapshotting into a store at another site); limiting the
// disks' cluster puts it beside the store.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { ClusterInfo } from '../scripts/testbed.mjs';

const run = promisify(execFile);

export interface Link {
  /** The ports put behind the link. */
  ports: number[];
  /** Bytes that went through the link since it was set up (the class's counter). */
  bytes(): Promise<number>;
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
        await tc('filter', 'add', 'dev', 'lo', 'protocol', 'ip', 'parent', '1:', 'prio', '1', 'u32', 'match', 'ip', dir, String(port), '0xffff', 'flowid', '1:10');
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
  return {
    ports,
    bytes: async () => (await sent()) - base,
    close: async () => {
      await tc('qdisc', 'del', 'dev', 'lo', 'root');
    },
  };
}
