// `check`: what the source is, what the target is, and whether the source user may clone into the target
// pool — turned into a plan (plan.ts). Changes nothing (the probe's scratch image comes and goes).
import type { CephCluster, Image, Ioctx } from '../ceph/index.js';
import { isNotFound } from './classify.js';
import type { Assessment, RbdSource, Services } from './context.js';
import { SourceNotFoundError } from './errors.js';
import { storeReadsSource } from './instant.js';
import { decidePlan, type CapsProbe, type PlanFacts } from './plan.js';
import { probeTargetPool } from './probe.js';
import { formatSource, type Source } from './source.js';
import { sniffFile } from './paths/file-source.js';

type SourceFacts = { features: { layering: boolean; deepFlatten: boolean }; snapProtected: boolean | null };

export async function assess(svc: Services, src: Source, mode: 'auto' | 'direct' | 'copy'): Promise<Assessment> {
  const glance = !svc.glance ? 'none' : svc.learned.glanceRefusesLocations ? 'refused' : 'assumed';
  const target: PlanFacts['target'] =
    svc.target.kind === 'rbd'
      ? { kind: 'rbd', fsid: (await svc.targetSession()).fsid, pool: svc.target.pool }
      : { kind: 'file', dataDir: svc.target.dataDir };
  const targetFsid = target.kind === 'rbd' ? target.fsid : null;
  const none = { sourceCluster: null, capsProbe: null, cloneFormat: null, features: null, snapProtected: null };

  if (src.kind === 'file') {
    const fileFormat = await sniffFile(src.path);
    const plan = decidePlan({ source: src, target, ...none, fileFormat, glance });
    return { kind: 'file', src, canonical: formatSource(src), plan, targetFsid };
  }

  const session = await svc.sourceSession();
  const canonical = formatSource(src, session.fsid);
  if (src.fsid !== null && src.fsid !== session.fsid) {
    throw new SourceNotFoundError(`source ${canonical} is in cluster ${src.fsid}, but the configured source cluster is ${session.fsid}`, {
      source: canonical,
    });
  }
  const { features, snapProtected } = await inspectSource(session, src, canonical);
  let capsProbe: CapsProbe | null = null;
  let cloneFormat: 1 | 2 | null = null;
  if (target.kind === 'rbd' && target.fsid === session.fsid && mode !== 'copy' && features.layering) {
    ({ caps: capsProbe, cloneFormat } = await probeTargetPool(svc, session, target.pool));
  }
  const sourceCluster = { fsid: session.fsid, user: session.user };
  const plan = decidePlan({ source: src, sourceCluster, target, capsProbe, cloneFormat, features, snapProtected, fileFormat: null, glance });
  if (plan.instant.possible && svc.target.kind === 'rbd') {
    plan.instant = await storeReadsSource(await svc.targetSession(), src, svc.target.pool, !!svc.glance);
  }
  return { kind: 'rbd', src, canonical, plan, session, targetFsid };
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
      snapProtected,
    };
  } finally {
    await image.close();
  }
}
