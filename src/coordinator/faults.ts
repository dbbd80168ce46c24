// Fault injection for tests: the coordinator calls the injector at every step boundary of both paths (and
// while data moves), and an injector that throws makes that step fail exactly as if the Ceph, store or
// Glance call behind it had failed. Not exported from the package: tests import this module and attach an
// injector with `withFaults`; production code never does.

/**
 * Every step a snapshot can take, in the order the paths take them. Registering in Glance comes last but
 * for removing the target's pending mark (which stays until Glance holds the location, so that a kill
 * before leaves a marked image gc finds) and the run record, whose failure does not fail the snapshot.
 */
export const DIRECT_STEPS = [
  'record',
  'glance-create',
  'snap-create',
  'snap-protect',
  'chain-depth',
  'clone',
  'mark-clone',
  'flatten',
  'snap-unprotect',
  'snap-remove',
  'finalize',
  'unlock-clone',
  'glance-add-location',
  'unmark-clone',
  'unrecord',
] as const;

export const COPY_STEPS = [
  'record',
  'glance-create',
  'snap-create',
  'copy',
  'snap-remove',
  'glance-add-location',
  'unmark-target',
  'unrecord',
] as const;

/**
 * The copy path with incremental snapshots on (paths/incremental.ts): `pairing` checks the common point,
 * then either `derive` + `flatten-first` + `copy-changes` + `finish` (made from the previous image and
 * flattened inside the target before the changes go in) or, for a background flatten, `derive` +
 * `copy-changes` + `finish` + `queue-flatten`; or `copy` + `record-base`
 * (a full copy); `pair` records the new common point, and `prune` (after registering) removes old ones.
 */
export const INCREMENTAL_STEPS = [
  'record',
  'glance-create',
  'pairing',
  'snap-create',
  'derive',
  'flatten-first',
  'copy-changes',
  'finish',
  'queue-flatten',
  'copy',
  'record-base',
  'pair',
  'glance-add-location',
  'unmark-target',
  'unrecord',
  'prune',
] as const;


/**
 * The steps of a group snapshot's own run (group/run.ts) around its disks' copy runs: the journal entry, the
 * temporary group and its images, the group snapshot, the commit (from here on the group is finished, not
 * removed), and taking the group snapshot and the temporary group down again.
 */
export const GROUP_STEPS = ['group-record', 'group-create', 'group-add', 'group-snap', 'group-snap-remove', 'group-remove', 'group-commit', 'group-unrecord'] as const;

export type StepName = (typeof DIRECT_STEPS)[number] | (typeof COPY_STEPS)[number] | (typeof INCREMENTAL_STEPS)[number]
  | (typeof GROUP_STEPS)[number];

export interface FaultPoint {
  path: 'direct' | 'copy' | 'group';
  step: StepName;
  /**
   * `before`: the step's operation has not run. `after`: it ran and succeeded, but the step is made to fail
   * anyway (what a timeout after a completed operation looks like). `progress`: data is moving (flatten,
   * copy); `done`/`total` say how far.
   */
  when: 'before' | 'after' | 'progress';
  done?: number;
  total?: number;
}

/** Throw (or reject) to fail the step at that point. */
export type FaultInjector = (point: FaultPoint) => void | Promise<void>;

/**
 * Where a coordinator's options carry a test's injector. A symbol, not an option: it is not part of the
 * public API (this module is not exported from the package); tests attach one with `withFaults`.
 */
const FAULTS = Symbol('snapstore.faults');

/** `opts` with `injector` attached (tests only). */
export function withFaults<T extends object>(opts: T, injector: FaultInjector): T {
  return { ...opts, [FAULTS]: injector };
}

/** The injector `withFaults` attached to `opts`, if any. */
export function faultsOf(opts: object): FaultInjector | undefined {
  const injector: unknown = (opts as { [FAULTS]?: unknown })[FAULTS];
  return typeof injector === 'function' ? (injector as FaultInjector) : undefined;
}
