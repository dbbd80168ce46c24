// The step engine both paths run on: every step is announced, timed, checked against the caller's
// AbortSignal and the test fault injector; everything a step creates pushes its undo action on a stack,
// and a failure anywhere unwinds that stack in reverse order. Handles that must be released on success as
// well (open images) go on the same stack as `always` entries, so the order of release stays right.
import { SnapshotCancelledError } from './errors.js';
import { errorText, type Logger } from './events.js';
import type { FaultInjector, StepName } from './faults.js';
import { bounded } from './stall.js';

/** A step failed; `cause` is what the operation behind it threw. */
export class StepFailure extends Error {
  constructor(
    readonly step: StepName,
    override readonly cause: unknown,
  ) {
    super(`step ${step} failed: ${errorText(cause)}`, { cause });
    this.name = 'StepFailure';
  }
}

export interface UndoHandle {
  /** The thing no longer needs undoing (it was removed by the normal flow, or handed to the caller). */
  release(): void;
}

/** `failed`: an undo action run before this one (newer on the stack) failed, so something is left over. */
export type UndoAction = (state: { failed: boolean }) => Promise<void>;

interface Entry {
  what: string;
  fn: UndoAction;
  always: boolean;
  live: boolean;
  /** Records what is left (the run record, the journal entry) rather than removing anything. */
  bookkeeping: boolean;
}

export interface UndoFailure {
  what: string;
  error: unknown;
}

export interface StepContext {
  runId: string;
  path: 'direct' | 'copy' | 'group';
  emit: Logger;
  faults?: FaultInjector | undefined;
  signal?: AbortSignal | undefined;
  onProgress?: ((p: { phase: string; done: number; total: number }) => void) | undefined;
  /** Each undo action (its retries included) fails after this long: a cluster gone for good must not
   *  hold the rollback for ever (see stall.ts). None when absent. */
  undoBoundMs?: number | undefined;
}

const UNDO_ATTEMPTS = 4;

export class StepRunner {
  private readonly stack: Entry[] = [];
  /** A fault raised inside a progress callback, kept until the operation returns. */
  private progressFault: unknown = undefined;
  private committed = false;
  /** Set by leaveForGc: why nothing may be removed by this run's rollback. */
  private leftForGc: unknown = undefined;

  constructor(private readonly ctx: StepContext) {}

  get runId(): string {
    return this.ctx.runId;
  }

  /**
   * The run reached its point of no return (Glance holds its location): a cancel from here on is too late,
   * and the steps left (removing its records) run to the end.
   */
  commit(): void {
    this.committed = true;
  }

  throwIfAborted(): void {
    if (this.ctx.signal?.aborted && !this.committed) throw new SnapshotCancelledError({ runId: this.ctx.runId }, this.ctx.signal.reason);
  }

  async step<T>(step: StepName, action: () => Promise<T>): Promise<T> {
    this.throwIfAborted();
    const started = performance.now();
    const { runId, path, emit, faults } = this.ctx;
    emit({ type: 'step', runId, path, step, state: 'start' });
    let result: T;
    try {
      if (faults) await faults({ path, step, when: 'before' });
      this.progressFault = undefined;
      result = await action();
      if (this.progressFault !== undefined) throw this.progressFault;
      if (faults) await faults({ path, step, when: 'after' });
    } catch (err) {
      const cause = this.progressFault ?? err;
      this.progressFault = undefined;
      emit({ type: 'step', runId, path, step, state: 'failed', ms: performance.now() - started, error: errorText(cause) });
      if (cause instanceof SnapshotCancelledError) throw cause;
      if (this.ctx.signal?.aborted && !this.committed) throw new SnapshotCancelledError({ runId, step }, cause);
      throw new StepFailure(step, cause);
    }
    emit({ type: 'step', runId, path, step, state: 'done', ms: performance.now() - started });
    return result;
  }

  /**
   * Reports progress of the running step. Returns false when the operation should stop (cancelled, or a
   * test fault fired) — native progress callbacks use this to abort flatten; copy loops check it per chunk.
   */
  progress(step: StepName, phase: string, done: number, total: number): boolean {
    const { runId, path, emit, faults, onProgress } = this.ctx;
    emit({ type: 'progress', runId, phase, done, total });
    try {
      onProgress?.({ phase, done, total });
    } catch {
      // A throwing progress callback does not fail the snapshot.
    }
    if (faults && this.progressFault === undefined) {
      try {
        const r = faults({ path, step, when: 'progress', done, total });
        if (r instanceof Promise) r.catch(() => {});
      } catch (err) {
        this.progressFault = err;
      }
    }
    return this.progressFault === undefined && !this.ctx.signal?.aborted;
  }

  /** The error that stopped data moving, for loops that check `progress()` themselves. */
  stopReason(): unknown {
    if (this.progressFault !== undefined) return this.progressFault;
    return new SnapshotCancelledError({ runId: this.ctx.runId }, this.ctx.signal?.reason);
  }

  /**
   * Pushes an action run only if the snapshot fails. `bookkeeping`: it only records what is left (called
   * with `failed: true` it keeps the record for gc), so it still runs when the run is left for gc.
   */
  undo(what: string, fn: UndoAction, opts: { bookkeeping?: boolean } = {}): UndoHandle {
    return this.push(what, fn, false, opts.bookkeeping ?? false);
  }

  /** Pushes an action run when the snapshot ends either way (closing handles). */
  always(what: string, fn: () => Promise<void>): UndoHandle {
    return this.push(what, fn, true, false);
  }

  /**
   * The rollback must remove nothing: what the run made may be in use (Glance may have registered it,
   * and nobody can tell). Handles are still closed and the run's records kept, marked for gc, which
   * decides later from what it can then see; every removal is reported as left, with `why`.
   */
  leaveForGc(why: unknown): void {
    this.leftForGc ??= why;
  }

  private push(what: string, fn: UndoAction, always: boolean, bookkeeping: boolean): UndoHandle {
    const entry: Entry = { what, fn, always, live: true, bookkeeping };
    this.stack.push(entry);
    return {
      release: () => {
        entry.live = false;
      },
    };
  }

  /** Runs every `always` entry, newest first, and forgets the undo actions: the snapshot is complete. */
  async finish(): Promise<void> {
    const entries = this.stack.splice(0).reverse();
    for (const e of entries) {
      if (!e.live || !e.always) continue;
      try {
        await e.fn({ failed: false });
      } catch (err) {
        this.ctx.emit({ type: 'undo', runId: this.ctx.runId, what: e.what, state: 'failed', error: errorText(err) });
      }
    }
  }

  /** Runs one undo action up to UNDO_ATTEMPTS times; resolves to the last error, or undefined once it ran. */
  private async attempts(e: Entry, failed: boolean): Promise<unknown> {
    let lastError: unknown;
    for (let attempt = 1; attempt <= UNDO_ATTEMPTS; attempt++) {
      try {
        await e.fn({ failed });
        return undefined;
      } catch (err) {
        lastError = err;
        if (attempt < UNDO_ATTEMPTS) await new Promise((r) => setTimeout(r, 150 * attempt));
      }
    }
    return lastError;
  }

  /**
   * Unwinds everything, newest first. Each action is retried a few times (a removal can meet a watcher
   * that is going away); the ones that still fail are returned, and unwinding goes on past them.
   */
  async rollback(): Promise<UndoFailure[]> {
    const failures: UndoFailure[] = [];
    const entries = this.stack.splice(0).reverse();
    const leaving = this.leftForGc !== undefined;
    for (const e of entries) {
      if (!e.live) continue;
      if (leaving && !e.always && !e.bookkeeping) {
        failures.push({ what: e.what, error: this.leftForGc });
        this.ctx.emit({ type: 'undo', runId: this.ctx.runId, what: e.what, state: 'failed', error: `left for gc: ${errorText(this.leftForGc)}` });
        continue;
      }
      const bound = this.ctx.undoBoundMs;
      const attempts = this.attempts(e, failures.length > 0 || leaving);
      const lastError = await (bound ? bounded(attempts, bound, `undo: ${e.what}`) : attempts).then(
        (err) => err,
        (err: unknown) => err,
      );
      if (lastError === undefined) {
        if (!e.always) this.ctx.emit({ type: 'undo', runId: this.ctx.runId, what: e.what, state: 'done' });
      } else {
        failures.push({ what: e.what, error: lastError });
        this.ctx.emit({ type: 'undo', runId: this.ctx.runId, what: e.what, state: 'failed', error: errorText(lastError) });
      }
    }
    return failures;
  }
}
