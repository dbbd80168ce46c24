// What the coordinator hands its paths: the services of one coordinator (sessions, the target Store, the
// Glance client, the event emitter) and, per run, the step runner and the run's options. The paths import
// these types, never the coordinator, so the coordinator imports the paths and not the other way round.
import type { CephCluster } from '../ceph/index.js';
import type { RbdSourceConfig, TargetConfig } from '../config/types.js';
import type { GlanceClient } from '../glance/client.js';
import type { Store } from '../store.js';
import type { Logger } from './events.js';
import type { FaultInjector } from './faults.js';
import type { DetailedPlan } from './plan.js';
import type { Source } from './source.js';
import type { StepRunner } from './steps.js';
import type { SnapshotOptions, SnapshotResult } from './types.js';

export type RbdSource = Extract<Source, { kind: 'rbd' }>;
export type FileSource = Extract<Source, { kind: 'file' }>;

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
  target: TargetConfig;
  glance: GlanceClient | null;
  emit: Logger;
  faults: FaultInjector | undefined;
  sourceSession(): Promise<CephCluster>;
  targetSession(): Promise<CephCluster>;
  store(): Promise<Store>;
  learned: Learned;
}

interface Planned {
  /** The source as `rbd://fsid/pool/image[/snap]` or `file:///path`. */
  canonical: string;
  plan: DetailedPlan;
  targetFsid: string | null;
}

/** What `check` learned about a source, kept for the run that follows it. */
export type Assessment =
  | (Planned & { kind: 'rbd'; src: RbdSource; session: CephCluster })
  | (Planned & { kind: 'file'; src: FileSource });

export type RbdAssessment = Extract<Assessment, { kind: 'rbd' }>;
export type FileAssessment = Extract<Assessment, { kind: 'file' }>;

/** An assessment the direct path can run: an RBD source, a known clone format, and the pool clones go to. */
export type DirectAssessment = RbdAssessment & { cloneFormat: 1 | 2; targetPool: string };

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
  r: StepRunner;
  imageId: string;
  opts: SnapshotOptions;
  glanceImage: GlanceTarget | null;
}

/** What a path returns; the coordinator adds how it got there. */
export type PathResult = Omit<SnapshotResult, 'method' | 'fallbackReason' | 'seconds' | 'flatten'>;
