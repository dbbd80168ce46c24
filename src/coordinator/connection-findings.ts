// `check` with a Ceph connection that fails: the failure (CEPH_AUTH, CEPH_UNREACHABLE, CEPH_CONFIG — the
// operator's keyring, key, user, ceph.conf or network) becomes a finding of the plan instead of failing the
// whole check, and both connections are tried, so one run shows everything that is wrong with them.
import type { CephCluster } from '../ceph/index.js';
import { isCephConnectionError } from '../ceph/index.js';
import type { Plan, Reason } from './types.js';

export interface CheckedConnections {
  /** Connects to the source cluster (as the disks' user); null when the check needs no source connection. */
  source: (() => Promise<CephCluster>) | null;
  /** Connects to the target cluster as the store's user; null (or resolving to null) for a store not in Ceph. */
  target: (() => Promise<CephCluster | null>) | null;
}

const SIDE_WORDS = { source: "the source cluster (the disks' user)", target: "the target cluster (the image store's user)" };

/**
 * Connects both sides at once (their timeouts overlap). Returns null when every connection works; else the
 * plan `check` returns: one NO finding per failed connection (its code, its message, its fix) and an ok
 * one per working connection. Errors other than the three connection codes are thrown as they are.
 */
export async function connectionFindings(connections: CheckedConnections): Promise<Plan | null> {
  const tried = (['source', 'target'] as const).flatMap((side) => {
    const connect = connections[side];
    return connect ? [{ side, connect }] : [];
  });
  const outcomes = await Promise.all(
    tried.map(({ side, connect }) =>
      connect().then(
        (cluster) => ({ side, cluster, error: undefined as unknown }),
        (error: unknown) => ({ side, cluster: null, error }),
      ),
    ),
  );
  const reasons: Reason[] = [];
  for (const { side, cluster, error } of outcomes) {
    if (cluster) {
      reasons.push({ code: 'CEPH_CONNECTED', ok: true, message: `${SIDE_WORDS[side]}: connected to cluster ${cluster.fsid} as client.${cluster.user}` });
    } else if (error !== undefined) {
      if (!isCephConnectionError(error)) throw error;
      reasons.push({ code: error.code, ok: false, message: `${SIDE_WORDS[side]}: ${error.message}`, ...(error.fix ? { fix: error.fix } : {}) });
    }
  }
  if (reasons.every((r) => r.ok)) return null;
  return {
    // Plan has no "neither" method: nothing can run until the connections work; the findings say why.
    method: 'copy',
    reasons,
    instant: { possible: false, reason: 'snapstore cannot connect to Ceph (see the findings above)' },
  };
}
