// `check` across Ceph versions (issue 14): which Ceph each cluster runs (the monitors' `versions`), which
// clone format each allows (require_min_compat_client from `osd dump`), and — when the data is copied from
// one cluster to another — the source image's features the target's images will not have: features the
// target's release or this client's librbd cannot enable, and features the store's user does not create
// images with (rbd default features). Informational findings (`ok`): they never decide direct or copy,
// they say what the copy will and will not carry over. Any question a cluster refuses (caps, timeout) is
// said as unknown, never fails the check.
import type { CephCluster } from '../ceph/index.js';
import { errorText } from './events.js';
import type { Reason } from './types.js';

const TIMEOUT_MS = 10_000;

export interface ClusterVersions {
  fsid: string;
  /** Distinct `18.2.7 reef` of the cluster's daemons (more than one while it is being upgraded); null: unknown. */
  versions: string[] | null;
  /** The oldest major version among them (16 Pacific, 18 Reef). */
  major: number | null;
  /** 2 when require_min_compat_client is mimic or later, else 1; null: unknown. */
  cloneFormat: 1 | 2 | null;
  requireMinCompatClient: string | null;
  /** Features new images of this connection's user get (its `rbd default features`); null: unknown. */
  defaultFeatures: string[] | null;
  /** Why something is unknown. */
  unknown: string[];
}

// Client releases in order, for require_min_compat_client: clone format 2 needs mimic or later.
const RELEASES = ['jewel', 'kraken', 'luminous', 'mimic', 'nautilus', 'octopus', 'pacific', 'quincy', 'reef', 'squid'];

/**
 * The Ceph major version that first knows an image feature (include/rbd/features.h history): a cluster
 * older than that cannot enable it. Features not listed are Jewel's (10) or older.
 */
const FEATURE_SINCE: Readonly<Record<string, number>> = {
  'data-pool': 11,
  operations: 12,
  migrating: 14,
  'non-primary': 15,
  'dirty-cache': 16,
};

const FEATURE_BITS = ['layering', 'striping', 'exclusive-lock', 'object-map', 'fast-diff', 'deep-flatten', 'journaling', 'data-pool', 'operations', 'migrating', 'non-primary', 'dirty-cache'];

async function monJson(session: CephCluster, cmd: object): Promise<unknown> {
  const { output } = await session.native.monCommand({ ...cmd, format: 'json' }, undefined, { timeoutMs: TIMEOUT_MS });
  return JSON.parse(output.toString('utf8')) as unknown;
}

/** `ceph version 18.2.7 (<sha>) reef (stable)` → `18.2.7 reef`. */
function shortVersion(text: string): string {
  const m = /ceph version (\S+) \(\S+\) (\S+)/.exec(text);
  return m ? `${m[1]} ${m[2]}` : text;
}

/** `rbd default features` as librbd reads it: names (`layering,deep-flatten`) or a bit mask (`61`). */
function parseFeatures(value: string): string[] {
  const v = value.trim();
  if (/^\d+$/.test(v)) return FEATURE_BITS.filter((_, i) => (BigInt(v) >> BigInt(i)) & 1n);
  return v.split(/[\s,+]+/).filter(Boolean);
}

/** What `session`'s cluster runs and allows, asked of its monitors as the session's user. */
export async function clusterVersions(session: CephCluster): Promise<ClusterVersions> {
  const facts: ClusterVersions = { fsid: session.fsid, versions: null, major: null, cloneFormat: null, requireMinCompatClient: null, defaultFeatures: null, unknown: [] };
  const [versions, osdDump] = await Promise.allSettled([monJson(session, { prefix: 'versions' }), monJson(session, { prefix: 'osd dump' })]);
  if (versions.status === 'fulfilled') {
    const overall = Object.keys((versions.value as { overall?: Record<string, number> }).overall ?? {});
    facts.versions = overall.map(shortVersion).sort();
    const majors = facts.versions.map((v) => Number.parseInt(v, 10)).filter((n) => Number.isFinite(n));
    facts.major = majors.length ? Math.min(...majors) : null;
  } else {
    facts.unknown.push(`its version (mon command versions: ${errorText(versions.reason)})`);
  }
  if (osdDump.status === 'fulfilled') {
    const req = (osdDump.value as { require_min_compat_client?: string }).require_min_compat_client ?? null;
    facts.requireMinCompatClient = req;
    if (req !== null && RELEASES.includes(req)) facts.cloneFormat = RELEASES.indexOf(req) >= RELEASES.indexOf('mimic') ? 2 : 1;
  } else {
    facts.unknown.push(`its clone format (mon command osd dump: ${errorText(osdDump.reason)})`);
  }
  try {
    facts.defaultFeatures = parseFeatures(session.confGet('rbd_default_features'));
  } catch (err) {
    facts.unknown.push(`its user's rbd default features (${errorText(err)})`);
  }
  return facts;
}

function describe(c: ClusterVersions): string {
  const runs = c.versions ? `runs Ceph ${c.versions.join(' and ')}` : 'runs an unknown Ceph';
  const clones = c.cloneFormat === null ? '' : `, clone format ${c.cloneFormat} (require-min-compat-client ${c.requireMinCompatClient})`;
  return `cluster ${c.fsid} ${runs}${clones}`;
}

/**
 * The findings about versions: one CEPH_VERSIONS naming both clusters (one when they are the same), and when
 * they differ CLONE_FORMATS and TARGET_FEATURES for what the copy cannot carry over.
 * `sourceFeatures`: the source image's feature names (`bit<N>` for one this client's librbd does not know).
 */
export function versionReasons(source: ClusterVersions, target: ClusterVersions | null, sourceFeatures: string[]): Reason[] {
  const unknown = [source, ...(target ? [target] : [])].flatMap((c) => c.unknown.map((u) => `cluster ${c.fsid}: ${u} could not be asked`));
  if (!target || target.fsid === source.fsid) {
    const where = target ? 'source and target' : 'the source';
    return [{ code: 'CEPH_VERSIONS', ok: true, message: `${where}: ${describe(source)}${unknown.length ? `; ${unknown.join('; ')}` : ''}` }];
  }
  const differ = source.versions !== null && target.versions !== null && source.versions.join() !== target.versions.join();
  const reasons: Reason[] = [
    {
      code: 'CEPH_VERSIONS',
      ok: true,
      message: `the source ${describe(source)}; the target ${describe(target)}${differ ? ' (different Ceph versions)' : ''}${unknown.length ? `; ${unknown.join('; ')}` : ''}`,
    },
  ];
  if (source.cloneFormat !== null && target.cloneFormat !== null && source.cloneFormat !== target.cloneFormat) {
    reasons.push({
      code: 'CLONE_FORMATS',
      ok: true,
      message: `the clusters differ in clone format: the source allows ${source.cloneFormat}, the target ${target.cloneFormat}; clones of the stored image in the target cluster are format ${target.cloneFormat}${target.cloneFormat === 1 ? ' (its snapshot stays protected while they exist)' : ''}`,
      ...(target.cloneFormat === 1 ? { fix: 'ceph osd set-require-min-compat-client mimic (in the target cluster, once every client is mimic or later)' } : {}),
    });
  }
  const features = featureDifferences(sourceFeatures, target);
  if (features) reasons.push(features);
  return reasons;
}

/** Source features the copy will lack in the target, and why; null when it carries all of them. */
function featureDifferences(sourceFeatures: string[], target: ClusterVersions): Reason | null {
  const unknownToClient = sourceFeatures.filter((f) => f.startsWith('bit'));
  const tooNew = sourceFeatures.filter((f) => target.major !== null && (FEATURE_SINCE[f] ?? 10) > target.major);
  const notDefault = target.defaultFeatures
    ? sourceFeatures.filter((f) => !f.startsWith('bit') && !tooNew.includes(f) && !target.defaultFeatures?.includes(f))
    : [];
  const parts: string[] = [];
  if (unknownToClient.length) parts.push(`${unknownToClient.join(', ')} (unknown to this client's librbd, which cannot enable it)`);
  if (tooNew.length) parts.push(`${tooNew.join(', ')} (the target's Ceph ${target.major} cannot enable it)`);
  if (notDefault.length) parts.push(`${notDefault.join(', ')} (not in the rbd default features the store's user creates images with: ${target.defaultFeatures?.join(',')})`);
  if (!parts.length) return null;
  return {
    code: 'TARGET_FEATURES',
    ok: true,
    message: `the source image has features the copy in the target will not have: ${parts.join('; ')}; the data is the same`,
  };
}
