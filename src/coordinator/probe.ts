// Probing, as the source user, whether it may create images in the target pool (a scratch image made and
// removed) and — once per coordinator — which clone format librbd picks on this cluster (an unprotected
// snapshot of the scratch image cloned with librbd's default: format 1 refuses it).
import type { CephCluster, Ioctx } from '../ceph/index.js';
import { hasCode } from '../errors.js';
import { isPermission } from './classify.js';
import type { Services } from './context.js';
import { errorText } from './events.js';
import { probeImageName } from './names.js';
import type { CapsProbe } from './plan.js';
import { removeImageFully, whileBusy } from './rbd-util.js';

const CLONE_FORMAT_PROBE_SNAP = 'probe';

export async function probeTargetPool(svc: Services, session: CephCluster, pool: string): Promise<{ caps: CapsProbe; cloneFormat: 1 | 2 | null }> {
  const refused = (err: unknown) => ({ caps: { ok: false as const, permission: isPermission(err), error: errorText(err) }, cloneFormat: null });
  let io: Ioctx;
  const name = probeImageName();
  try {
    io = await session.pool(pool);
    await io.createImage(name, 1 << 20);
  } catch (err) {
    return refused(err);
  }
  const child = probeImageName();
  try {
    svc.learned.cloneFormat ??= await cloneFormatOf(io, name, child);
    return { caps: { ok: true }, cloneFormat: svc.learned.cloneFormat };
  } catch (err) {
    return refused(err);
  } finally {
    // gc removes a probe that could not be removed here (its name carries its birth time).
    await removeImageFully(io, child).catch(() => {});
    await whileBusy(() => removeImageFully(io, name)).catch((err: unknown) =>
      svc.emit({ type: 'undo', runId: 'probe', what: `remove probe image ${pool}/${name}`, state: 'failed', error: errorText(err) }),
    );
  }
}

/** Clones an unprotected snapshot of the scratch image `name` as `child`: format 1 refuses that. */
async function cloneFormatOf(io: Ioctx, name: string, child: string): Promise<1 | 2> {
  const image = await io.openImage(name);
  try {
    await image.snapCreate(CLONE_FORMAT_PROBE_SNAP);
    let format: 1 | 2;
    try {
      await io.clone(name, CLONE_FORMAT_PROBE_SNAP, io, child);
      format = 2;
      await io.removeImage(child);
    } catch (err) {
      if (!hasCode(err, 'INVALID_ARGUMENT')) throw err;
      format = 1;
    }
    await image.snapRemove(CLONE_FORMAT_PROBE_SNAP);
    return format;
  } finally {
    await image.close();
  }
}
