// The snapshot coordinator: plan (check) → direct clone path | streaming copy path, cleanup, gc.
export { SnapshotCoordinator, type SnapshotCoordinatorOptions } from './coordinator.js';
export {
  BadSourceError,
  CleanupFailedError,
  CoordinatorClosedError,
  ModeNotPossibleError,
  NotConfiguredError,
  SnapshotCancelledError,
  SnapshotFailedError,
  SourceNotFoundError,
  TargetExistsError,
} from './errors.js';
export type { CoordinatorEvent } from './events.js';
export {
  Flattener,
  type FlattenReport,
  type FlattenerEvent,
  type FlattenerOptions,
} from './flattener.js';
export type { SourceRemovalReport } from './source-removal.js';
export type { FlattenStatus, FlattenStatusEntry } from './flatten-status.js';
export { FLATTEN_KEY, SourceInUseError, type FlattenRequest } from './instant.js';
export type { StepName } from './faults.js';
export { GLANCE_GROUP_PROPERTY } from './group/member.js';
export type { GroupDiskPlan, GroupImageResult, GroupPlan, GroupSnapshotOptions, GroupSnapshotResult } from './group/types.js';
export { PROBE_PREFIX, RUN_KEY_PREFIX, SNAP_PREFIX } from './names.js';
export type { GcOptions, GcReport, IncrementalCheck, InstantCheck, Leftover, Plan, Reason, SnapshotOptions, SnapshotResult } from './types.js';
