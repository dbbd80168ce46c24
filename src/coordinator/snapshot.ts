// One snapshot: the options checked, the path chosen from the plan, and attempts run until one succeeds —
// a failure the copy path can get around (missing caps, clone refused, Glance refusing locations) falls
// back to it; anything else is mapped to the error the caller sees, after everything created was removed.
import { randomUUID } from 'node:crypto';
import { InternalError, SnapstoreError } from '../errors.js';
import { checkImageId } from '../location.js';
import { assess } from './assess.js';
import { directFallback, isLocationsNotAllowed, isNotFound, type Fallback } from './classify.js';
import type { Assessment, DirectAssessment, FlattenChoice, GlanceTarget, PathResult, Services, Sink } from './context.js';
import {
  BadSourceError,
  CleanupFailedError,
  ModeNotPossibleError,
  SnapshotCancelledError,
  SnapshotFailedError,
  SourceNotFoundError,
} from './errors.js';
import { errorText } from './events.js';
import { newRunId } from './names.js';
import { copy } from './paths/copy.js';
import { direct } from './paths/direct.js';
import { incremental, incrementalAsked, incrementalTarget } from './paths/incremental.js';
import { checkTargetFree } from './paths/target.js';
import { checkChainLimits } from './linked.js';
import { blockersText, type DetailedPlan } from './plan.js';
import { parseSource } from './source.js';
import { stallBoundMs } from './stall.js';
import { StepFailure, StepRunner } from './steps.js';
import type { Plan, SnapshotOptions, SnapshotResult } from './types.js';
import type { Store } from '../store.js';

type Mode = 'auto' | 'direct' | 'copy';
type FlattenMode = NonNullable<SnapshotOptions['flatten']>;

/** The state of a snapshot across its attempts. */
interface Attempt {
  method: 'direct' | 'copy';
  fallbackReason: string | null;
  sink: Sink;
  imageId: string;
}

export function publicPlan(plan: DetailedPlan): Plan {
  return { method: plan.method, reasons: plan.reasons, instant: plan.instant, ...(plan.linked ? { linked: plan.linked } : {}) };
}

export async function runSnapshot(svc: Services, source: string, opts: SnapshotOptions): Promise<SnapshotResult> {
  const started = performance.now();
  const { mode, flatten } = validateOptions(opts);
  const src = parseSource(source, svc.sourceConfig?.pool);
  if (opts.signal?.aborted) throw new SnapshotCancelledError({ source }, opts.signal.reason);
  const a = await assess(svc, src, mode, { linked: flatten.mode === 'never' });
  svc.emit({ type: 'plan', source: a.canonical, plan: publicPlan(a.plan) });
  const raw = a.plan.reasons.find((r) => r.code === 'RAW_FORMAT' && !r.ok);
  if (raw) throw new BadSourceError(`${a.canonical}: ${raw.message}`, { source: a.canonical });

  const sink: Sink = svc.glance && svc.learned.glanceRefusesLocations ? 'glance' : 'store';
  const attempt: Attempt = {
    ...chooseMethod(a, mode, flatten.mode, incrementalAsked(a, sink, opts)),
    sink,
    imageId: opts.imageId ?? randomUUID(),
  };
  for (;;) {
    const partial = await runAttempt(svc, a, attempt, opts, mode, flatten);
    if (partial === null) continue;
    const { queued, fullReason, incremental: made, ...rest } = partial.result;
    const result: SnapshotResult = {
      ...rest,
      method: attempt.method,
      fallbackReason: [attempt.fallbackReason, fullReason].filter((t) => t).join('; ') || null,
      incremental: made ?? null,
      seconds: (performance.now() - started) / 1000,
      // The copy path leaves a flatten only for an incremental snapshot made from the previous image.
      ...(attempt.method === 'direct' ? flattenState(flatten.mode, queued, partial.result.chain) : queued ? flattenState('background', queued, undefined) : { flatten: 'done' as const }),
    };
    svc.emit({ type: 'result', runId: partial.runId, result });
    return result;
  }
}

/**
 * How the result reports the flatten: done, queued with the mgr, pending for snapstore's flattener, or —
 * linked — never (unless the chain passed a limit).
 */
function flattenState(
  mode: FlattenMode,
  queued: PathResult['queued'],
  chain: SnapshotResult['chain'],
): Pick<SnapshotResult, 'flatten' | 'flattenTask' | 'flattenerReason'> {
  if (mode === 'never' && chain?.limit === 'none') return { flatten: 'never' };
  if (mode === 'sync' || chain?.limit === 'hard') return { flatten: 'done' };
  if (queued?.via === 'mgr') return { flatten: 'queued', flattenTask: queued.taskId };
  return { flatten: 'pending', ...(queued ? { flattenerReason: queued.reason } : {}) };
}

function validateOptions(opts: SnapshotOptions): { mode: Mode; flatten: FlattenChoice } {
  const mode = opts.mode ?? 'auto';
  if (mode !== 'auto' && mode !== 'direct' && mode !== 'copy') {
    throw new SnapstoreError('INVALID_ARGUMENT', `mode must be auto, direct or copy, not ${JSON.stringify(mode)}`);
  }
  const flatten = opts.flatten ?? 'sync';
  if (flatten !== 'sync' && flatten !== 'background' && flatten !== 'never') {
    throw new SnapstoreError('INVALID_ARGUMENT', `flatten must be sync, background or never, not ${JSON.stringify(flatten)}`);
  }
  const limits = checkChainLimits(opts.chainLimits);
  const checksums = opts.checksums ?? 'auto';
  if (checksums !== 'auto' && checksums !== 'inline' && checksums !== 'off') {
    throw new SnapstoreError('INVALID_ARGUMENT', `checksums must be auto, inline or off, not ${JSON.stringify(checksums)}`);
  }
  if (opts.imageId !== undefined) checkImageId(opts.imageId);
  const keep = opts.keepCommonPoints;
  if (keep !== undefined && !(Number.isSafeInteger(keep) && keep >= 1)) {
    throw new SnapstoreError('INVALID_ARGUMENT', `keepCommonPoints must be a whole number of at least 1, not ${JSON.stringify(keep)}`);
  }
  return { mode, flatten: { mode: flatten, limits } };
}

function chooseMethod(a: Assessment, mode: Mode, flatten: FlattenMode, incremental: boolean): Pick<Attempt, 'method' | 'fallbackReason'> {
  let choice: Pick<Attempt, 'method' | 'fallbackReason'>;
  if (mode === 'copy') {
    choice = { method: 'copy', fallbackReason: null };
  } else if (a.plan.method === 'direct') {
    choice = { method: 'direct', fallbackReason: null };
  } else if (mode === 'direct') {
    throw new ModeNotPossibleError(`the direct path is not possible for ${a.canonical}: ${blockersText(a.plan)}`, { source: a.canonical });
  } else {
    choice = { method: 'copy', fallbackReason: blockersText(a.plan) };
  }
  if (flatten === 'never') linkedPossible(a, choice.method);
  // An incremental copy made from the previous image can leave its flatten to the background as well.
  const laterCopy = choice.method === 'copy' && incremental;
  if (flatten === 'background' && !laterCopy && (choice.method !== 'direct' || !a.plan.instant.possible)) {
    throw new ModeNotPossibleError(`an instant snapshot (flatten: background) of ${a.canonical} is not possible: ${a.plan.instant.reason}`, {
      source: a.canonical,
      ...(a.plan.instant.fix ? { fix: a.plan.instant.fix } : {}),
    });
  }
  return choice;
}

/** MODE_NOT_POSSIBLE, with every precondition that failed and its fix, unless a linked snapshot can be made. */
function linkedPossible(a: Assessment, method: 'direct' | 'copy'): void {
  const linked = a.plan.linked;
  if (method === 'direct' && linked?.possible) return;
  const failed = linked?.reasons.filter((r) => !r.ok) ?? [];
  const why = failed.length ? failed.map((r) => r.message).join('; ') : method === 'copy' ? 'it was asked for with the copy mode' : 'the source is not an RBD disk cloned into the store';
  const fixes = failed.flatMap((r) => (r.fix ? [r.fix] : []));
  const fixText = fixes.length ? `; fix: ${fixes.join('; ')}` : '';
  throw new ModeNotPossibleError(`a linked snapshot (flatten: never) of ${a.canonical} is not possible: ${why}${fixText}`, {
    source: a.canonical,
    ...(fixes.length ? { fix: fixes.join('; ') } : {}),
  });
}

/** What the direct path needs, which a plan that chose it guarantees. */
async function directAssessment(store: Store, a: Assessment): Promise<DirectAssessment> {
  const cloneFormat = a.plan.cloneFormat;
  const clones = store.clones;
  if (!a.disk || cloneFormat === null || !clones) {
    throw new InternalError('the direct path was chosen for a plan that does not allow it');
  }
  return { ...a, cloneFormat, clones, where: await clones.where() };
}

/**
 * Runs one attempt. Returns its result, or null when it failed in a way the copy path avoids (then
 * `attempt` is switched to it); throws anything else.
 */
async function runAttempt(
  svc: Services,
  a: Assessment,
  attempt: Attempt,
  opts: SnapshotOptions,
  mode: Mode,
  flatten: FlattenChoice,
): Promise<{ result: PathResult; runId: string } | null> {
  const { method, sink, imageId } = attempt;
  const store = await svc.store();
  await checkTargetFree(store, method, sink, imageId);
  const runId = newRunId();
  svc.emit({ type: 'run', runId, path: method, source: a.canonical, imageId });
  // A run whose journal lease another process took over (it stalled past the lease) stops like a cancelled one.
  const leaseLost = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, leaseLost.signal]) : leaseLost.signal;
  const runOpts = { ...opts, signal };
  const undoBoundMs = stallBoundMs(a.disk ? a.session : null, await svc.storeUserSession().catch(() => null));
  const r = new StepRunner({ runId, path: method, emit: svc.emit, faults: svc.faults, signal, onProgress: opts.onProgress, undoBoundMs });
  const glanceImage: GlanceTarget | null = svc.glance ? { id: imageId, created: opts.imageId === undefined } : null;
  const ctx = { svc, store, r, imageId, opts: runOpts, glanceImage, leaseLost };
  try {
    const inc = method === 'copy' && a.disk ? incrementalTarget(store, a, sink, opts) : null;
    const result =
      method === 'direct'
        ? await direct(ctx, await directAssessment(store, a), flatten)
        : inc && a.disk
          ? await incremental(ctx, a, inc, opts.keepCommonPoints ?? 1, flatten.mode === 'background')
          : await copy(ctx, a, sink);
    await r.finish();
    return { result, runId };
  } catch (err) {
    const failures = await r.rollback();
    if (failures.length > 0) throw cleanupFailed(a, runId, err, failures);
    if (err instanceof SnapshotCancelledError || !(err instanceof StepFailure)) throw err;
    const fallback = fallbackFor(svc, attempt, err);
    if (!fallback || mode === 'direct') throw failedError(a, method, runId, err);
    if (fallback.code === 'LOCATIONS_NOT_ALLOWED') {
      svc.learned.glanceRefusesLocations = true;
      attempt.sink = 'glance';
    }
    attempt.fallbackReason = `${fallback.reason}: ${errorText(err.cause)}`;
    svc.emit({ type: 'fallback', runId, code: fallback.code, reason: attempt.fallbackReason });
    attempt.method = 'copy';
    // Glance keeps the ids of deleted images: a new attempt needs a new one unless the caller chose it.
    if (opts.imageId === undefined) attempt.imageId = randomUUID();
    return null;
  }
}

function fallbackFor(svc: Services, attempt: Attempt, err: StepFailure): Fallback | null {
  if (attempt.method === 'direct') return directFallback(err.step, err.cause);
  if (svc.glance && attempt.sink === 'store' && err.step === 'glance-add-location' && isLocationsNotAllowed(err.cause)) {
    return { code: 'LOCATIONS_NOT_ALLOWED', reason: 'Glance does not accept locations (show_multiple_locations is off)' };
  }
  return null;
}

function cleanupFailed(a: Assessment, runId: string, err: unknown, failures: Array<{ what: string; error: unknown }>): CleanupFailedError {
  const step = err instanceof StepFailure ? err.step : null;
  const cause = err instanceof StepFailure ? err.cause : err;
  const leftovers = failures.map((f) => `${f.what} (${errorText(f.error)})`).join('; ');
  return new CleanupFailedError(
    `snapshot of ${a.canonical} failed${step ? ` at ${step}` : ''} (${errorText(cause)}), and removing what it had created failed too: ${leftovers}; run gc to retry`,
    { source: a.canonical, runId, step, leftovers: failures.map((f) => f.what) },
    cause,
  );
}

function failedError(a: Assessment, method: 'direct' | 'copy', runId: string, err: StepFailure): SnapstoreError {
  const cause = err.cause;
  // A configuration matter the operator must fix (exit 2), already one line naming the fix: shown as is.
  if (cause instanceof SnapstoreError && cause.code === 'GLANCE_SERVICE_ROLE_REQUIRED') return cause;
  if (isNotFound(cause) && (err.step === 'record' || err.step === 'snap-create' || err.step === 'copy')) {
    return new SourceNotFoundError(`source ${a.canonical} disappeared during the snapshot`, { source: a.canonical, step: err.step }, cause);
  }
  return new SnapshotFailedError(
    `snapshot of ${a.canonical} failed at ${err.step} (${method} path): ${errorText(cause)}; everything it had created was removed`,
    { source: a.canonical, step: err.step, method, runId },
    cause,
  );
}
