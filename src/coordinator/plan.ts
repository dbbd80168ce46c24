// Deciding direct or copy from what `check` found out, and saying why in words an operator can act on.
// Pure: the probing lives in the coordinator; this file only turns findings into a Plan.
import { instantCheck } from './instant.js';
import { isRbdSource } from './source-kind.js';
import { clonesGoTo, type TargetFacts } from './target-facts.js';
import type { Source } from './source.js';
import type { Plan, Reason } from './types.js';

export type CapsProbe =
  | { ok: true }
  | { ok: false; permission: boolean; error: string };

export interface PlanFacts {
  source: Source;
  /** The source cluster as connected (null when the source is a file, or no source cluster is configured). */
  sourceCluster: { fsid: string; user: string } | null;
  target: TargetFacts;
  /** Creating and removing a scratch image in the target pool as the source user; null when not tried. */
  capsProbe: CapsProbe | null;
  /** The clone format librbd uses on the source cluster; null when not probed. */
  cloneFormat: 1 | 2 | null;
  /** Features of the source image; null for a file. */
  features: { layering: boolean; deepFlatten: boolean } | null;
  /** For an existing-snapshot source: whether it is protected. */
  snapProtected: boolean | null;
  /** For a file source: what its first bytes say it is. */
  fileFormat: string | null;
  glance: 'none' | 'assumed' | 'refused';
}

export interface DetailedPlan extends Plan {
  cloneFormat: 1 | 2 | null;
  /** The first reason that rules out the direct path, for `fallbackReason`. */
  blocker: Reason | null;
}

export function capsFix(user: string, sourcePool: string, targetPool: string): string {
  const pools = sourcePool === targetPool ? [sourcePool] : [sourcePool, targetPool];
  return `ceph auth caps client.${user} mon 'profile rbd' osd '${pools.map((p) => `profile rbd pool=${p}`).join(', ')}'`;
}

export function decidePlan(f: PlanFacts): DetailedPlan {
  const reasons: Reason[] = [...kindReasons(f), ...clusterReasons(f), ...cloneReasons(f), ...glanceReasons(f)];
  const src = f.source;
  const directPossible =
    isRbdSource(src) && clonesGoTo(f.target) !== null && !!f.sourceCluster && f.capsProbe?.ok === true && f.cloneFormat !== null;
  const blocker = reasons.find((r) => !r.ok) ?? null;
  const method = directPossible && blocker === null ? 'direct' : 'copy';
  const instant = instantCheck(f, method === 'direct', blockersText({ reasons }));
  return { method, reasons, instant, cloneFormat: f.cloneFormat, blocker: method === 'copy' ? blocker : null };
}

/** What the source and the target are, and whether the source's data can be stored as is. */
function kindReasons(f: PlanFacts): Reason[] {
  const reasons: Reason[] = [];
  const src = f.source;
  if (!isRbdSource(src)) {
    reasons.push({ code: 'SOURCE_KIND', ok: false, message: `the source is a file (${src.path}); its data is copied` });
  } else if (src.snap === null) {
    reasons.push({ code: 'SOURCE_KIND', ok: true, message: `the source is the RBD disk ${src.pool}/${src.image}; snapstore takes a point-in-time snapshot of it` });
  } else {
    reasons.push({ code: 'SOURCE_KIND', ok: true, message: `the source is the existing snapshot ${src.pool}/${src.image}@${src.snap}; it is used as is` });
  }

  const clones = clonesGoTo(f.target);
  const dir = f.target.dataDir ? ` (${f.target.dataDir})` : '';
  if (clones) {
    reasons.push({ code: 'TARGET_KIND', ok: true, message: `the target is the ${f.target.kind} store in pool ${clones.pool}, which can hold clones` });
  } else {
    reasons.push({ code: 'TARGET_KIND', ok: false, message: `the target is a ${f.target.kind} store${dir}; it cannot hold clones, so the data is copied` });
  }

  if (!isRbdSource(src) && f.fileFormat !== null) {
    const raw = f.fileFormat === 'raw';
    reasons.push({
      code: 'RAW_FORMAT',
      ok: raw,
      message: raw ? 'the file holds raw data' : `the file is ${f.fileFormat}, not raw; snapstore stores raw images only`,
      ...(raw ? {} : { fix: `convert it first: qemu-img convert -O raw ${src.path} ${src.path}.raw` }),
    });
  } else if (isRbdSource(src)) {
    reasons.push({ code: 'RAW_FORMAT', ok: true, message: 'RBD images are raw' });
  }
  return reasons;
}

/** Whether source and target share a cluster, and whether the source user may create images in the target pool. */
function clusterReasons(f: PlanFacts): Reason[] {
  const src = f.source;
  const clones = clonesGoTo(f.target);
  if (!isRbdSource(src) || !clones || !f.sourceCluster) return [];
  const same = f.sourceCluster.fsid === clones.fsid;
  const reasons: Reason[] = [
    {
      code: 'SAME_CLUSTER',
      ok: same,
      message: same
        ? `source and target are in the same cluster (${clones.fsid})`
        : `the source is in cluster ${f.sourceCluster.fsid}, the target in ${clones.fsid}; the data is copied between them`,
    },
  ];
  if (!same || !f.capsProbe) return reasons;
  const user = f.sourceCluster.user;
  if (f.capsProbe.ok) {
    reasons.push({ code: 'TARGET_CAPS', ok: true, message: `client.${user} can create and remove images in pool ${clones.pool} (probed)` });
  } else {
    reasons.push({
      code: 'TARGET_CAPS',
      ok: false,
      message: f.capsProbe.permission
        ? `client.${user} may not create images in pool ${clones.pool} (probe refused: ${f.capsProbe.error})`
        : `creating a scratch image in pool ${clones.pool} as client.${user} failed: ${f.capsProbe.error}`,
      ...(f.capsProbe.permission ? { fix: capsFix(user, src.pool, clones.pool) } : {}),
    });
  }
  return reasons;
}

/** Whether the source can be cloned, and how. */
function cloneReasons(f: PlanFacts): Reason[] {
  const reasons: Reason[] = [];
  const src = f.source;
  if (f.features) {
    reasons.push({
      code: 'SOURCE_FEATURES',
      ok: f.features.layering,
      message: f.features.layering
        ? `the source has layering${f.features.deepFlatten ? ' and deep-flatten' : ' (no deep-flatten: fine for a flattened copy)'}`
        : 'the source lacks the layering feature (it cannot be enabled after creation), so it cannot be cloned',
    });
  }
  if (f.cloneFormat === null) return reasons;
  reasons.push({
    code: 'CLONE_FORMAT',
    ok: true,
    message:
      f.cloneFormat === 2
        ? 'clone format 2 is available (require-min-compat-client mimic or later): no protect needed'
        : 'only clone format 1 is available (require-min-compat-client below mimic): the snapshot is protected while it is cloned',
  });
  if (isRbdSource(src) && src.snap !== null && f.cloneFormat === 1 && f.snapProtected === false) {
    reasons.push({
      code: 'SNAPSHOT_PROTECTED',
      ok: false,
      message: `clone format 1 needs ${src.image}@${src.snap} protected, and snapstore does not change snapshots it did not take`,
      fix: `rbd snap protect ${src.pool}/${src.image}@${src.snap}`,
    });
  }
  return reasons;
}

function glanceReasons(f: PlanFacts): Reason[] {
  if (f.glance === 'assumed') {
    return [
      {
        code: 'GLANCE_LOCATIONS',
        ok: true,
        message: 'assumed: Glance only tells whether it accepts locations by trying; if it refuses, the data is uploaded through Glance instead',
      },
    ];
  }
  if (f.glance === 'refused') {
    return [
      {
        code: 'GLANCE_LOCATIONS',
        ok: false,
        message: 'Glance refused to add locations (show_multiple_locations is off); the data is uploaded through Glance',
        fix: 'set show_multiple_locations = True in glance-api.conf (Zed needs it to add locations)',
      },
    ];
  }
  return [];
}

/** The reasons that rule out the direct path, as one line (for MODE_NOT_POSSIBLE and fallbackReason). */
export function blockersText(plan: Pick<Plan, 'reasons'>): string {
  const bad = plan.reasons.filter((r) => !r.ok);
  return bad.length ? bad.map((r) => r.message).join('; ') : 'the direct path was not probed';
}
