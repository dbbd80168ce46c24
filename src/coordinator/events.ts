// What the coordinator tells its logger. One event per step boundary, progress while data moves, the
// fallback reason once, and each undo action when a run is rolled back.
import { codeOf } from '../errors.js';
import type { StepName } from './faults.js';
import type { Leftover, Plan, SnapshotResult } from './types.js';

export type CoordinatorEvent =
  | { type: 'plan'; source: string; plan: Plan }
  | { type: 'run'; runId: string; path: 'direct' | 'copy' | 'group'; source: string; imageId: string }
  | { type: 'step'; runId: string; path: 'direct' | 'copy' | 'group'; step: StepName; state: 'start' | 'done' | 'failed'; ms?: number; error?: string }
  | { type: 'progress'; runId: string; phase: string; done: number; total: number }
  | { type: 'fallback'; runId: string; code: string; reason: string }
  | { type: 'undo'; runId: string; what: string; state: 'done' | 'failed'; error?: string }
  | { type: 'result'; runId: string; result: SnapshotResult }
  /** A location call got no clear answer; the image read back said this (see glance/outcome.ts). */
  | { type: 'glance-outcome'; runId: string; imageId: string; state: 'present' | 'absent' | 'unknown' }
  | { type: 'flatten-queued'; runId: string; imageId: string; via: 'mgr'; taskId: string }
  | { type: 'flatten-queued'; runId: string; imageId: string; via: 'flattener'; code: string; reason: string; fix?: string }
  /** A new image flattened inside the target before the run went on (incremental, flattened before returning): by ceph-mgr, or by snapstore and why. */
  | { type: 'flattened'; runId: string; imageId: string; via: 'mgr' | 'snapstore'; why?: string }
  | { type: 'gc'; action: 'found' | 'removed' | 'kept' | 'failed'; leftover: Leftover; why?: string }
  | { type: 'gc-skipped'; location: string; why: string }
  /** Incremental snapshots: an older common point removed from the disk (`snap`), or kept because removing it failed. */
  | { type: 'common-point'; runId: string; state: 'removed' | 'kept'; snap: string | null; why?: string };

export type Logger = (event: CoordinatorEvent) => void;

/** A logger that throws must not break a snapshot. */
export function safeLogger(logger: Logger | undefined): Logger {
  if (!logger) return () => {};
  return (event) => {
    try {
      logger(event);
    } catch {
      // The caller's logger failing is not the snapshot failing.
    }
  };
}

export function errorText(err: unknown): string {
  if (err instanceof Error) {
    const code = codeOf(err);
    return code !== undefined ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}
