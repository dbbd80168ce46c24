// Glance images a killed run created (found through its run record).
import { GlanceNotFound } from '../../glance/errors.js';
import type { GlanceClient } from '../../glance/client.js';
import { GLANCE_RUN_PROPERTY } from '../names.js';
import type { Leftover } from '../types.js';
import type { Removal } from './scan.js';

/** The removal of the Glance image a run record says its run created. */
export function glanceRemoval(glance: GlanceClient, id: string, runId: string, leftover: Leftover): Removal {
  return { leftover, remove: () => deleteGlanceImage(glance, id, runId) };
}

/**
 * Deletes a Glance image only if the run created it (it carries the run's id) and never finished it: an
 * active image is a completed snapshot whose record merely outlived it.
 */
async function deleteGlanceImage(glance: GlanceClient, id: string, runId: string): Promise<void> {
  try {
    const image = await glance.getImage(id);
    if (image[GLANCE_RUN_PROPERTY] !== runId || image.status === 'active') return;
  } catch (err) {
    if (err instanceof GlanceNotFound) return;
    throw err;
  }
  await glance.deleteImage(id, { ignoreMissing: true });
}
