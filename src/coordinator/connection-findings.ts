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
  const sides = (['source', 'target'] as const).filter((side) => connections[side] !== null);
  const results = await Promise.allSettled(sides.map((side) => connections[side]!()));
  const reasons: Reason[] = [];
  results.forEach((result, i) => {
    const side = sides[i]!;
    if (result.status === 'fulfilled') {
      const c = result.value;
      if (c === null) return;
      reasons.push({ code: 'CEPH_CONNECTED', ok: true, message: `${SIDE_WORDS[side]}: connected to cluster ${c.fsid} as client.${c.user}` });
      return;
    }
    const err: unknown = result.reason;
    if (!isCephConnectionError(err)) throw err;
    reasons.push({ code: err.code, ok: false, message: `${SIDE_WORDS[side]}: ${err.message}`, ...(err.fix ? { fix: err.fix } : {}) });
  });
  if (reasons.every((r) => r.ok)) return null;
  return {
    // Plan has no "neither" method: nothing can run until the connections work; the findings say why.
    method: 'copy',
    reasons,
    instant: { possible: false, reason: 'snapstore cannot connect to Ceph (see the findings above)' },
  };
}
