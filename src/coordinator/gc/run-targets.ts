// The target a stale run record names — removed only when it is an image of the configured target store,
// and only when it proves it is that run's (its pending mark names the run, or it is a clone hanging from
// the run's snapshot that the run had not marked yet): a record is data anyone allowed to write the source
// pool could forge.
import { SnapstoreError } from '../../errors.js';
import { GlanceNotFound } from '../../glance/errors.js';
import { FLATTEN_KEY } from '../instant.js';
import { glanceHold } from './glance-images.js';
import { decodePendingMarker, type RunRecord } from '../names.js';
import { withImage } from '../rbd-util.js';
import { clonePool } from './removals.js';
import type { Scan } from './scan.js';

export type TargetRemoval =
  | { remove: () => Promise<void> }
  /** The run's Glance image is active: the image stays, only its pending mark is cleared (`finish`). */
  | { registered: string; finish: () => Promise<void> };

/**
 * How to remove the run's target; null when it is not an image of this configuration's store. A run keeps
 * its target's pending mark until Glance holds the location (paths/copy.ts, direct.ts): a run killed
 * after that left an image an active Glance image may use, which stays.
 */
export async function targetRemoval(scan: Scan, record: RunRecord): Promise<TargetRemoval | null> {
  const imageId = await storeImageOf(scan, record);
  if (imageId === null) return null;
  const registered = await activeInGlance(scan, record);
  if (registered) {
    return {
      registered,
      finish: async () => {
        if (await provesRun(scan, imageId, record)) await scan.store.clearPending(imageId);
      },
    };
  }
  return {
    remove: async () => {
      if (!(await provesRun(scan, imageId, record))) {
        scan.ctx.emit({ type: 'gc-skipped', location: record.target, why: `not removed: nothing shows it belongs to run ${record.runId}` });
        return;
      }
      await discardUnlessHeld(scan, imageId, record.target);
    },
  };
}

/** Why the target stays when the run's Glance image is active (or cannot be checked); null otherwise. */
async function activeInGlance(scan: Scan, record: RunRecord): Promise<string | null> {
  const id = record.glance?.id;
  if (id === undefined) return null;
  const glance = scan.ctx.glance;
  if (!glance) return `the run registers it as Glance image ${id}, and this gc has no Glance to check whether that image uses it`;
  try {
    const image = await glance.getImage(id);
    return image.status === 'active' ? `Glance image ${id} is active: the run registered it before it stopped (its pending mark is cleared)` : null;
  } catch (err) {
    if (err instanceof GlanceNotFound) return null;
    throw err;
  }
}

/**
 * Removes a run's target unless Glance may point at it: registered (the run completed: its mark comes off)
 * or not known (kept for a later gc; the group stops, its record stays).
 */
export async function discardUnlessHeld(scan: Scan, imageId: string, location: string): Promise<void> {
  const hold = await glanceHold(scan.ctx.glance, imageId, location);
  if (!hold.holds) {
    await scan.store.discard(imageId);
    return;
  }
  if (hold.registered) {
    await scan.store.clearPending(imageId);
    scan.ctx.emit({ type: 'gc-skipped', location, why: `kept: ${hold.why}` });
    return;
  }
  throw new SnapstoreError('IN_USE', `${location} kept: ${hold.why}`);
}

/**
 * The id in the target store of the image the record names, or null when the record names no image of it.
 * Records of older versions carry no id: their target ends with it, and an RBD target lacked the snapshot
 * part of the location the store gives it now.
 */
async function storeImageOf(scan: Scan, record: RunRecord): Promise<string | null> {
  let id: string;
  let location: string;
  try {
    id = record.imageId ?? decodeURIComponent(record.target.slice(record.target.lastIndexOf('/') + 1));
    location = await scan.store.locationOf(id);
  } catch {
    return null;
  }
  return location === record.target || (record.imageId === undefined && location.startsWith(`${record.target}/`)) ? id : null;
}

/** Whether the run made the image: its pending mark, or (a direct run killed before marking it) its parent. */
async function provesRun(scan: Scan, imageId: string, record: RunRecord): Promise<boolean> {
  const marker = decodePendingMarker((await scan.store.readPending(imageId)) ?? '');
  if (marker) return marker.runId === record.runId;
  if (record.method !== 'direct' || record.sourceSnap === null) return false;
  const io = await clonePool(scan.source, (await scan.store.clones?.where()) ?? null);
  if (!io) return false;
  return withImage(io, imageId, { readOnly: true }, false, async (image) => {
    // A finished instant snapshot waiting for its flatten: the run completed; the record merely outlived it.
    if ((await image.metadataGet(FLATTEN_KEY)) !== null) return false;
    return (await image.parentInfo())?.snapshot === record.sourceSnap;
  });
}
