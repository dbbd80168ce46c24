// After a location call without a clear answer: whether the request may have been applied at all, and what
// the image, read back, says. A caller that deletes the data behind a location Glance did record leaves an
// image pointing at nothing; one that keeps data Glance never recorded only leaves something for gc. So
// "unclear" is the default, and only an answer or a failure before anything was sent counts as "not applied".
import { setTimeout as sleep } from 'node:timers/promises';
import { GlanceError, GlanceNotFound, GlanceOutcomeUnknown } from './errors.js';
import type { GlanceImage } from './types.js';

/** Codes of failures that happen before a request is sent: connecting, resolving the name, routing. */
const NOT_SENT = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

/**
 * True when a failed request may have reached Glance and been applied without its answer reaching us:
 * a timeout waiting for headers or body, a connection broken mid-request, an abort, a 5xx (a proxy's
 * 502/504 says nothing of what Glance behind it did), an unreadable 2xx body. False when Glance answered
 * with a 4xx, or the request was never sent (connection refused, connect timeout, name not resolved),
 * or the failure came before any request (no token, a location for the wrong cluster).
 */
export function mayHaveApplied(err: unknown): boolean {
  if (err instanceof GlanceOutcomeUnknown) return true;
  if (!(err instanceof GlanceError)) return false;
  if (err.code === 'GLANCE_TOKEN_UNAVAILABLE') return false;
  if (err.status !== undefined) return err.status >= 500 || err.code === 'GLANCE_INVALID_RESPONSE';
  const { failure, errorCode, phase } = err.context as { failure?: string; errorCode?: string | null; phase?: string };
  // Only a refused connection is retried for a non-idempotent request: an abort while waiting to retry
  // comes after a request that was never sent.
  if (phase === 'backoff') return false;
  if (failure === 'refused') return false;
  return !(typeof errorCode === 'string' && NOT_SENT.has(errorCode));
}

/** What Glance holds for a location: it (the image active with it), not it, or no telling. */
export type LocationState = { state: 'present'; image: GlanceImage } | { state: 'absent'; image: GlanceImage | null } | { state: 'unknown'; error: unknown };

/**
 * Judges one read of the image. The location is looked for in `locations` (show_multiple_locations) or
 * `direct_url`; a Glance that shows neither is judged by status alone: the images snapstore registers are
 * queued until their location makes them active, so active can only be the location's doing.
 */
export function judgeLocation(image: GlanceImage, url: string): LocationState {
  const visible = Array.isArray(image.locations) || typeof image.direct_url === 'string';
  const listed = (image.locations ?? []).some((l) => l.url === url) || image.direct_url === url;
  if (visible ? listed : image.status === 'active') {
    if (image.status === 'active') return { state: 'present', image };
    return { state: 'unknown', error: new Error(`the location is listed but the image is ${image.status}`) };
  }
  if (image.status === 'queued' || (visible && image.status === 'active')) return { state: 'absent', image };
  return { state: 'unknown', error: new Error(`the image is ${image.status} without the location`) };
}

export interface ReadBackOptions {
  /** Reads tried (each with the client's own retries inside); default 3. */
  attempts?: number;
  /** Wait before the second read, doubled after; default 1 s. */
  delayMs?: number;
}

/**
 * Reads the image back until one read can be judged, at most `attempts` times. Deliberately without the
 * caller's AbortSignal: it runs after a cancel too, bounded by the client's own timeout per read.
 */
export async function readBackLocation(
  get: (id: string) => Promise<GlanceImage>,
  imageId: string,
  url: string,
  opts: ReadBackOptions = {},
): Promise<LocationState> {
  const attempts = Math.max(1, opts.attempts ?? 3);
  let delay = opts.delayMs ?? 1000;
  let last: LocationState = { state: 'unknown', error: null };
  for (let i = 0; i < attempts; i++) {
    if (i > 0) {
      await sleep(delay);
      delay *= 2;
    }
    try {
      last = judgeLocation(await get(imageId), url);
    } catch (err) {
      // Deleted images answer 404: nothing can point at the data through it.
      if (err instanceof GlanceNotFound) return { state: 'absent', image: null };
      last = { state: 'unknown', error: err };
      continue;
    }
    if (last.state !== 'unknown') return last;
  }
  return last;
}
