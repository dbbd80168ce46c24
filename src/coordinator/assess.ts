// `check`: what the source is, what the target is, and whether the source user may clone into the target
// pool — turned into a plan (plan.ts). Changes nothing (the probe's scratch image comes and goes).
import type { CephCluster, Image, Ioctx } from '../ceph/index.js';
import { isNotFound } from './classify.js';
import { clusterVersions, versionReasons } from './cluster-versions.js';
import type { Assessment, RbdSource, Services } from './context.js';
import { SourceNotFoundError } from './errors.js';
import { storeReadsSource } from './instant.js';
import { linkedCheck } from './linked.js';
import { decidePlan, type CapsProbe } from './plan.js';
import { probeTargetPool } from './probe.js';
import { isRbdSource } from './source-kind.js';
import { formatSource, type Source } from './source.js';
import type { TargetFacts } from './target-facts.js';
import type { InstantCheck } from './types.js';
import { sniffFile } from './paths/file-source.js';

type SourceFacts = { features: { layering: boolean; deepFlatten: boolean }; featureNames: string[]; snapProtected: boolean | null };

/**
 * `versions`: also say which Ceph each cluster runs and what differs (`check` only; two mon commands a side).
 * `linked`: also probe what a linked snapshot needs (check always does; a snapshot only for `flatten: 'never'`).
 */
export async function assess(
  svc: Services,
  src: Source,
  mode: 'auto' | 'direct' | 'copy',
  { versions = false, linked = true }: { versions?: boolean; linked?: boolean } = {},
): Promise<Assessment> {
  const glance = !svc.glance ? 'none' : svc.learned.glanceRefusesLocations ? 'refused' : 'assumed';
  const store = await svc.store();
  const where = (await store.clones?.where()) ?? null;
  const target: TargetFacts = { kind: store.kind, ...(where ?? {}) };
  const targetFsid = where?.fsid ?? null;
  const none = { sourceCluster: null, capsProbe: null, cloneFormat: null, features: null, snapProtected: null };

  if (!isRbdSource(src)) {
    const fileFormat = await sniffFile(src.path);
    const plan = decidePlan({ source: src, target, ...none, fileFormat, glance });
    return { disk: false, src, canonical: formatSource(src), plan, targetFsid };
  }

  const session = await svc.sourceSession();
  const canonical = formatSource(src, session.fsid);
  if (src.fsid !== null && src.fsid !== session.fsid) {
    throw new SourceNotFoundError(`source ${canonical} is in cluster ${src.fsid}, but the configured source cluster is ${session.fsid}`, {
      source: canonical,
    });
  }
  const { features, featureNames, snapProtected } = await inspectSource(session, src, canonical);
  let capsProbe: CapsProbe | null = null;
  let cloneFormat: 1 | 2 | null = null;
  if (where && where.fsid === session.fsid && mode !== 'copy' && features.layering) {
    ({ caps: capsProbe, cloneFormat } = await probeTargetPool(svc, session, where.pool));
  }
  const sourceCluster = { fsid: session.fsid, user: session.user };
  const plan = decidePlan({ source: src, sourceCluster, target, capsProbe, cloneFormat, features, snapProtected, fileFormat: null, glance });
  if (plan.instant.possible && where) plan.instant = await storeUserReads(svc, src, where.pool);
  if (versions) plan.reasons.push(...(await versionFindings(svc, session, featureNames)));
  if (linked && where && mode !== 'copy') plan.linked = await linkedCheck(svc, session, src, where.pool, plan);
  return { disk: true, src, canonical, plan, session, targetFsid };
}

/** CEPH_VERSIONS and what differs between the source cluster and the store's (versionReasons). */
async function versionFindings(svc: Services, session: CephCluster, featureNames: string[]) {
  const storeUser = await svc.storeUserSession();
  const [source, target] = await Promise.all([clusterVersions(session), storeUser ? clusterVersions(storeUser) : null]);
  return versionReasons(source, target, featureNames);
}

/** Whether the store's user can read the disk an instant snapshot would read through to (see instant.ts). */
async function storeUserReads(svc: Services, src: RbdSource, pool: string): Promise<InstantCheck> {
  const storeUser = await svc.storeUserSession();
  if (!storeUser) {
    return {
      possible: false,
      reason: "snapstore cannot tell whether the store's user may read the disks (the store was given as an object, not a config)",
    };
  }
  return storeReadsSource(storeUser, src, pool, !!svc.glance);
}

/** The source's features and (for an existing snapshot) whether it is protected; SourceNotFound when absent. */
async function inspectSource(session: CephCluster, src: RbdSource, canonical: string): Promise<SourceFacts> {
  const notFound = (what: string, cause: unknown) =>
    new SourceNotFoundError(`source ${canonical}: ${what} does not exist`, { source: canonical }, cause);
  let io: Ioctx;
  try {
    io = await session.pool(src.pool);
  } catch (err) {
    if (isNotFound(err)) throw notFound(`pool ${src.pool}`, err);
    throw err;
  }
  let image: Image;
  try {
    image = await io.openImage(src.image, { readOnly: true });
  } catch (err) {
    if (isNotFound(err)) throw notFound(`image ${src.pool}/${src.image}`, err);
    throw err;
  }
  try {
    const st = await image.stat();
    let snapProtected: boolean | null = null;
    if (src.snap !== null) {
      if (!(await image.snapExists(src.snap))) throw notFound(`snapshot ${src.pool}/${src.image}@${src.snap}`, null);
      snapProtected = await image.snapIsProtected(src.snap);
    }
    return {
      features: { layering: st.featureNames.includes('layering'), deepFlatten: st.featureNames.includes('deep-flatten') },
      featureNames: st.featureNames,
      snapProtected,
    };
  } finally {
    await image.close();
  }
}
