// `check --group`: which path each disk would take within a group snapshot, and why — changes nothing but
// what `check` of one disk changes (its probe image comes and goes).
import { codeOf } from '../../errors.js';
import type { Services } from '../context.js';
import { publicPlan } from '../snapshot.js';
import type { Reason } from '../types.js';
import { chooseGroup } from './ceph.js';
import { assessDisks, GROUP_CLONE_REASON, groupDisks } from './disks.js';
import type { GroupPlan } from './types.js';

export async function checkGroup(svc: Services, sources: string[]): Promise<GroupPlan> {
  const disks = await assessDisks(svc, sources, 'auto');
  const session = disks[0].session;
  const reasons: Reason[] = [
    { code: 'GROUP_CLUSTER', ok: true, message: `every disk is in cluster ${session.fsid}: one group snapshot captures them at one point in time` },
  ];
  let possible = true;
  try {
    const g = await chooseGroup(session, groupDisks(disks), 'check');
    reasons.push(
      g.temporary
        ? { code: 'GROUP', ok: true, message: `the disks are in no RBD group: a temporary group in pool ${g.pool} holds them for the snapshot` }
        : { code: 'GROUP', ok: true, message: `the disks are in RBD group ${g.pool}/${g.name}: it is used as is (its other images get the group snapshot too, while it lasts)` },
    );
  } catch (err) {
    if (codeOf(err) !== 'GROUP_CONFLICT') throw err;
    possible = false;
    reasons.push({ code: 'GROUP', ok: false, message: err instanceof Error ? err.message : String(err), fix: 'put every disk in one RBD group (rbd group image add), or take them all out' });
  }
  return {
    possible,
    reasons,
    disks: disks.map((a) => {
      const plan = publicPlan(a.plan);
      svc.emit({ type: 'plan', source: a.canonical, plan });
      return { source: a.canonical, method: 'copy', reasons: [...plan.reasons, GROUP_CLONE_REASON] };
    }),
  };
}
