// Image API 2.17's `POST /v2/images/{id}/locations` answers 202 and records the location in a task of its
// own (glance/async_/flows/location_import.py): the image holds the `os_glance_import_task` lock, gets the
// location, turns `active` (or `importing` while Glance checks given hashes), and releases the lock. A
// failed task reverts the image to `queued` without a location. So a 202 says nothing yet: the caller
// waits here until the location is recorded or the task is known to have failed.
import { setTimeout as sleep } from 'node:timers/promises';
import { SnapstoreError } from '../errors.js';
import { GlanceError, GlanceTimeout, errorForNetwork, type GlanceErrorDetails } from './errors.js';
import { imagePath } from './paths.js';
import type { GlanceTransport } from './transport.js';
import type { GlanceImage, ImageLocation } from './types.js';

const IMPORT_LOCK = 'os_glance_import_task';
/** The location step itself is quick; a task that has not recorded it in this long is stuck. */
const RECORD_BOUND_MS = 120_000;

/** The location task failed: the image is `queued` again, without the location; `reason` is Glance's. */
export class GlanceLocationImportFailed extends GlanceError {
  constructor(details: GlanceErrorDetails, reason: string) {
    super('GLANCE_LOCATION_IMPORT_FAILED', `Glance ${details.method} ${details.path}: the location task failed: ${reason}`, details, {
      context: { reason },
    });
  }
}

/**
 * Polls the image until its location is recorded (`active`, or `importing` while Glance checks the hashes
 * given) and returns it; throws GlanceLocationImportFailed when the task released the lock and left the
 * image `queued`, GlanceTimeout after RECORD_BOUND_MS.
 */
export async function awaitLocationRecorded(
  transport: GlanceTransport,
  get: (id: string, signal: AbortSignal | undefined) => Promise<GlanceImage>,
  imageId: string,
  signal: AbortSignal | undefined,
): Promise<GlanceImage> {
  const details: GlanceErrorDetails = { method: 'POST', path: `${imagePath(imageId)}/locations` };
  const deadline = Date.now() + RECORD_BOUND_MS;
  for (let delay = 50; ; delay = Math.min(delay * 2, 1_000)) {
    const image = await get(imageId, signal);
    if (image.status !== 'queued') return image;
    if (image[IMPORT_LOCK] === undefined) {
      throw new GlanceLocationImportFailed(details, await taskMessage(transport, imageId, signal));
    }
    if (Date.now() > deadline) {
      throw new GlanceTimeout(details, { context: { phase: 'location-task', waitedMs: RECORD_BOUND_MS } });
    }
    try {
      await sleep(delay, undefined, { signal });
    } catch (err) {
      throw errorForNetwork(details, err, 'location-task');
    }
  }
}

/** The message of the image's latest location_import task (`GET /v2/images/{id}/tasks`, API 2.12+). */
async function taskMessage(transport: GlanceTransport, imageId: string, signal: AbortSignal | undefined): Promise<string> {
  try {
    const sent = await transport.send({ method: 'GET', path: `${imagePath(imageId)}/tasks`, signal });
    const body = await transport.readJson<{ tasks?: Array<{ type?: string; status?: string; message?: string; created_at?: string }> }>(sent);
    const tasks = (body.tasks ?? []).filter((t) => t.type === 'location_import');
    tasks.sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
    return tasks[0]?.message || `task ${tasks[0]?.status ?? 'not found'}, image queued again`;
  } catch (err) {
    if (err instanceof SnapstoreError) return `image queued again (its tasks could not be read: ${err.code})`;
    throw err;
  }
}

/**
 * `GET /v2/images/{id}/locations` (image API 2.17): the image's locations with their store metadata. Sent
 * with the service token like the other location calls: Glance's default policy (fetch_image_location)
 * allows it to the `service` role only.
 */
export async function listLocations(transport: GlanceTransport, imageId: string, signal?: AbortSignal): Promise<ImageLocation[]> {
  const sent = await transport.send({ method: 'GET', path: `${imagePath(imageId)}/locations`, signal, service: true });
  return transport.readJson<ImageLocation[]>(sent);
}
