// `snapstore snapshot SOURCE SOURCE... --group` and `snapstore check SOURCE... --group`.
import type { GroupPlan, SnapshotCoordinator } from '../coordinator/index.js';
import type { Invocation } from './args.js';
import type { Output } from './output.js';

type WithCoordinator = <T>(fn: (c: SnapshotCoordinator) => Promise<T>) => Promise<T>;

export async function snapshotGroup(inv: Invocation, out: Output, signal: AbortSignal, run: WithCoordinator): Promise<void> {
  const result = await run((c) =>
    c.snapshotGroup(inv.positionals, {
      mode: inv.mode,
      checksums: inv.checksums,
      signal,
      ...(inv.name ? { name: inv.name } : {}),
      onProgress: (p) => out.progress(p.phase, p.done, p.total),
    }),
  );
  out.endProgress();
  const g = result.group;
  const human = [
    `group snapshot ${result.groupId} of ${result.images.length} disks in ${result.seconds.toFixed(2)} s (through ${g.temporary ? 'a temporary group' : `group ${g.pool}/${g.name}`})`,
    ...result.images.map((i) => `  ${i.source}: image ${i.imageId} (${i.method}) at ${i.location}, ${i.sizeBytes} bytes${i.glance ? `, glance ${i.glance.status}` : ''}`),
  ].join('\n');
  out.result(result, human);
}

export async function checkGroup(inv: Invocation, out: Output, run: WithCoordinator): Promise<void> {
  const plan = await run((c) => c.checkGroup(inv.positionals));
  out.result(plan, renderGroupPlan(plan));
}

function renderGroupPlan(plan: GroupPlan): string {
  const lines = [`group snapshot: ${plan.possible ? 'possible' : 'NOT possible'}`];
  for (const r of plan.reasons) {
    lines.push(`  ${r.ok ? 'ok  ' : 'NO  '} ${r.code}: ${r.message}`);
    if (r.fix) lines.push(`        fix: ${r.fix}`);
  }
  for (const d of plan.disks) {
    lines.push(`${d.source}: ${d.method}`);
    for (const r of d.reasons) lines.push(`  ${r.ok ? 'ok  ' : 'NO  '} ${r.code}: ${r.message}`);
  }
  return lines.join('\n');
}
