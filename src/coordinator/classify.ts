// Which failures the copy path can get around. Errors are recognised by their stable `code` (ceph-rbd-napi's
// RbdError codes, the Store codes, the Glance client's classes), never by message text.
import { hasCode } from '../errors.js';
import type { StepName } from './faults.js';

export function isNotFound(err: unknown): boolean {
  return hasCode(err, 'NOT_FOUND');
}

export function isPermission(err: unknown): boolean {
  return hasCode(err, 'PERMISSION', 'READ_ONLY');
}

export function isLocationsNotAllowed(err: unknown): boolean {
  return hasCode(err, 'GLANCE_LOCATIONS_NOT_ALLOWED');
}

/** Steps that write to the target pool as the source user: a permission error there is what copy avoids. */
const TARGET_POOL_STEPS: ReadonlySet<StepName> = new Set<StepName>([
  'clone',
  'mark-clone',
  'flatten',
  'finalize',
  'unlock-clone',
  'unmark-clone',
]);

export type Fallback = { code: 'PERMISSION' | 'CLONE_UNSUPPORTED' | 'LOCATIONS_NOT_ALLOWED'; reason: string };

/**
 * Whether a direct-path failure at `step` is one the copy path avoids: the source user lacking caps on the
 * target pool, librbd refusing the clone, or Glance refusing locations. Anything else (the source itself,
 * I/O errors, Glance down) would fail the copy too.
 */
export function directFallback(step: StepName, err: unknown): Fallback | null {
  if (TARGET_POOL_STEPS.has(step) && isPermission(err)) {
    return { code: 'PERMISSION', reason: `the source user may not write the target pool (${step} was refused)` };
  }
  if (step === 'clone' && hasCode(err, 'INVALID_ARGUMENT', 'NOT_SUPPORTED', 'CROSS_CLUSTER')) {
    return { code: 'CLONE_UNSUPPORTED', reason: 'librbd refused the clone' };
  }
  if (step === 'glance-add-location' && isLocationsNotAllowed(err)) {
    return { code: 'LOCATIONS_NOT_ALLOWED', reason: 'Glance does not accept locations (show_multiple_locations is off)' };
  }
  return null;
}
