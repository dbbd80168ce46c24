// Glance images a killed run created (found through its run record), and the question gc asks Glance
// before removing any run's data: does an image there point at it? A run whose registration got no clear
// answer leaves its data marked for gc; that data may be a finished snapshot's.
import { SnapstoreError } from '../../errors.js';
import { GlanceNotFound } from '../../glance/errors.js';
import type { GlanceClient } from '../../glance/client.js';
import type { GlanceImage } from '../../glance/types.js';
import { errorText } from '../events.js';
import { GLANCE_RUN_PROPERTY } from '../names.js';
import type { Leftover } from '../types.js';
import type { Removal } from './scan.js';

/** The removal of the Glance image a run record says its run created. */
export function glanceRemoval(glance: GlanceClient, id: string, runId: string, leftover: Leftover): Removal {
  return { leftover, remove: () => deleteGlanceImage(glance, id, runId) };
}

/** Statuses of an image no data or location was ever committed to (a run's image before its location). */
const UNFINISHED = new Set(['queued', 'saving', 'uploading', 'importing', 'killed']);

/**
 * Deletes a Glance image only with proof that it is the run's unfinished image: it carries the run's id
 * (a record alone is data anyone who may write the disks' pool could forge), it is in a status no finished
 * image has, and no location is visible on it. An active image is a completed snapshot whose record merely
 * outlived it. Throws when the image is the run's but not provably unfinished: the run's group stops there.
 */
async function deleteGlanceImage(glance: GlanceClient, id: string, runId: string): Promise<void> {
  let image: GlanceImage;
  try {
    image = await glance.getImage(id);
  } catch (err) {
    if (err instanceof GlanceNotFound) return;
    throw err;
  }
  if (image[GLANCE_RUN_PROPERTY] !== runId || image.status === 'active') return;
  if (!UNFINISHED.has(image.status) || (image.locations?.length ?? 0) > 0 || typeof image.direct_url === 'string') {
    throw new SnapstoreError('IN_USE', `Glance image ${id} is ${image.status} or has a location: not provably an unfinished run's, not deleted`);
  }
  await glance.deleteImage(id, { ignoreMissing: true });
}

/** What Glance says of a run's data at `location`, registered (or not) as image `id`. */
/** `registered`: Glance has it (the run completed); else Glance could not tell. */
export type GlanceHold = { holds: false } | { holds: true; registered: boolean; why: string };

/**
 * Whether Glance may point at `location` through image `id` (the run's Glance image has the id of the
 * store image). Without a Glance in gc's configuration nothing can be asked: the data is judged as before.
 */
export async function glanceHold(glance: GlanceClient | null, id: string, location: string): Promise<GlanceHold> {
  if (!glance) return { holds: false };
  const read = await glance.readLocation(id, location, { attempts: 2 });
  if (read.state === 'absent') return { holds: false };
  if (read.state === 'present') return { holds: true, registered: true, why: `Glance image ${id} is active with it: the run completed` };
  return { holds: true, registered: false, why: `Glance could not tell whether image ${id} points at it (${errorText(read.error)})` };
}
