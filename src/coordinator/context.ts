// What the coordinator hands its paths: the services of one coordinator (sessions, the target Store, the
// Glance client, the event emitter) and, per run, the step runner and the run's options. The paths import
// these types, never the coordinator, so the coordinator imports the paths and not the other way round.
import type { CephCluster } from '../ceph/index.js';
import type { RbdSourceConfig } from '../config/types.js';
import type { GlanceClient } from '../glance/client.js';
import type { CloneTarget, Store } from '../store.js';
import type { Logger } from './events.js';
import type { FaultInjector } from './faults.js';
import type { DetailedPlan } from './plan.js';
import type { FileSource, RbdSource } from './source-kind.js';
import type { ChainLimits } from './linked.js';
import type { StepRunner } from './steps.js';
import type { SnapshotOptions, SnapshotResult } from './types.js';

export type { FileSource, RbdSource } from './source-kind.js';

/** What one coordinator learns once and keeps for the snapshots that follow. */
export interface Learned {
  /** A cluster's clone format does not change under a running service. */
  cloneFormat: 1 | 2 | null;
  /** Set when Glance refused a location: later snapshots upload through Glance straight away. */
  glanceRefusesLocations: boolean;
}

/** One coordinator's connections and collaborators, made lazily and shared by its runs. */
export interface Services {
  sourceConfig: RbdSourceConfig | undefined;
  glance: GlanceClient | null;
  emit: Logger;
  faults: FaultInjector | undefined;
  sourceSession(): Promise<CephCluster>;
  /** The target store's cluster as the store's user, for a store configured in a Ceph cluster; else null. */
  storeUserSession(): Promise<CephCluster | null>;
  /** The target store. */
  store(): Promise<Store>;
  learned: Learned;
}

interface Planned {
  /** The source as `rbd://fsid/pool/image[/snap]` or `file:///path`. */
  canonical: string;
  plan: DetailedPlan;
  /** The cluster the target store keeps its images in, when it is a Ceph cluster that can hold clones. */
  targetFsid: string | null;
}

/** What `check` learned about a source, kept for the run that follows it: an RBD disk (with its session) or a file. */
export type Assessment = (Planned & { disk: true; src: RbdSource; session: CephCluster }) | (Planned & { disk: false; src: FileSource });

export type RbdAssessment = Extract<Assessment, { disk: true }>;
export type FileAssessment = Extract<Assessment, { disk: false }>;

/** An assessment the direct path can run: an RBD source, a known clone format, and where clones go. */
export type DirectAssessment = RbdAssessment & { cloneFormat: 1 | 2; clones: CloneTarget; where: { fsid: string; pool: string } };

/** Where the copy path writes: the target store, or Glance's own store through an upload. */
export type Sink = 'store' | 'glance';

/** The Glance image a run fills: one it created (deleted on failure) or one the caller gave it. */
export interface GlanceTarget {
  id: string;
  created: boolean;
}

/** One run of a path. */
export interface RunContext {
  svc: Services;
  store: Store;
  r: StepRunner;
  imageId: string;
  opts: SnapshotOptions;
  glanceImage: GlanceTarget | null;
  /** Stops the run (as a cancel would, rolling back): another process took over its journal lease. */
  leaseLost?: AbortController;
}

/** When the direct path flattens: now, later (queued), or — linked — only past a chain limit. */
export interface FlattenChoice {
  mode: 'sync' | 'background' | 'never';
  limits: ChainLimits;
}

/** What a path returns; the coordinator adds how it got there. */
export type PathResult = Omit<SnapshotResult, 'method' | 'fallbackReason' | 'seconds' | 'flatten' | 'flattenTask' | 'flattenerReason' | 'incremental'> & {
  /** The incremental path: what it made the image from (null: a full copy, `fullReason` says why when the disk had a pairing). */
  incremental?: SnapshotResult['incremental'];
  fullReason?: string;
  /** Background only: how the flatten was queued (see direct.ts). */
  queued?: { via: 'mgr'; taskId: string } | { via: 'flattener'; reason: string };
};
