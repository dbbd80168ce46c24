// The errors a snapshot can end with. Each has a stable code an operator or the CLI can switch on; the
// `context` names the source and step, never a secret.
import { SnapstoreError, type ErrorContext } from '../errors.js';

/** The SOURCE string is not `rbd://fsid/pool/image[/snap]` or `file:///path`. Nothing was created. */
export class BadSourceError extends SnapstoreError {
  constructor(message: string, context: ErrorContext = {}) {
    super('BAD_SOURCE', message, { context });
  }
}

/** The disk, snapshot or file named by the source does not exist. Nothing was created. */
export class SourceNotFoundError extends SnapstoreError {
  constructor(message: string, context: ErrorContext = {}, cause?: unknown) {
    super('SOURCE_NOT_FOUND', message, { context, cause });
  }
}

/** The caller asked for `direct` (or `copy`) and the plan says it cannot be done that way. */
export class ModeNotPossibleError extends SnapstoreError {
  constructor(message: string, context: ErrorContext = {}) {
    super('MODE_NOT_POSSIBLE', message, { context });
  }
}

/** The coordinator lacks what a path needs (no source cluster configured, no target, …). */
export class NotConfiguredError extends SnapstoreError {
  constructor(message: string, context: ErrorContext = {}) {
    super('NOT_CONFIGURED', message, { context });
  }
}

/** A step failed and copying could not help; everything created so far was removed (see `cleanup`). */
export class SnapshotFailedError extends SnapstoreError {
  constructor(message: string, context: ErrorContext, cause: unknown) {
    super('SNAPSHOT_FAILED', message, { context, cause });
  }
}

/** The caller's AbortSignal fired; everything created so far was removed. */
export class SnapshotCancelledError extends SnapstoreError {
  constructor(context: ErrorContext = {}, cause?: unknown) {
    super('CANCELLED', 'the snapshot was cancelled; everything it had created was removed', { context, cause });
  }
}

/** The snapshot failed, and removing what it had created failed too: `context.leftovers` lists what remains. */
export class CleanupFailedError extends SnapstoreError {
  constructor(message: string, context: ErrorContext, cause: unknown) {
    super('CLEANUP_FAILED', message, { context, cause });
  }
}

/** The coordinator was closed. */
export class CoordinatorClosedError extends SnapstoreError {
  constructor() {
    super('CLOSED', 'the snapshot coordinator is closed');
  }
}

/** The image id is already taken in the target store. Nothing was created. */
export class TargetExistsError extends SnapstoreError {
  constructor(message: string, context: ErrorContext = {}) {
    super('TARGET_EXISTS', message, { context });
  }
}
