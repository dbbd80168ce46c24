// Registering a location: PATCH `add /locations/-` up to image API 2.16 (validation_data with both hashes,
// or attributes patched after), `POST /v2/images/{id}/locations` from 2.17 (Glance hashes itself). Both are
// sent with the service token: Glance 2.17 allows non-http locations to the `service` role only.
import { hasCode } from '../errors.js';
import {
  GlanceBadRequest,
  GlanceConflict,
  GlanceForbidden,
  GlanceOutcomeUnknown,
  type GlanceError,
} from './errors.js';
import { awaitLocationRecorded } from './location-task.js';
import { imagePath } from './paths.js';
import type { GlanceTransport } from './transport.js';
import type { AddLocationOptions, AddLocationResult, GlanceImage, ImagePatchOperation, ValidationDataOutcome } from './types.js';

/** The image calls the location flows need, from the client. */
export interface ImageCalls {
  transport: GlanceTransport;
  storeId: string | undefined;
  /** JSON-patch the image; `service` sends the service token too. */
  patch(id: string, operations: ImagePatchOperation[], signal: AbortSignal | undefined, service: boolean): Promise<GlanceImage>;
  update(id: string, operations: ImagePatchOperation[], options: { signal?: AbortSignal }): Promise<GlanceImage>;
  get(id: string, signal: AbortSignal | undefined): Promise<GlanceImage>;
}

/** Glance's 409 texts when it refuses a location's validation_data (glance/api/v2/images.py). */
const VALIDATION_REFUSED =
  /os_hash_algo must be|not a valid hexadecimal|not the correct size|already set with a different value|may only be provided when image status|Conflicting values/i;

function isValidationRefusal(err: unknown): err is GlanceError {
  if (err instanceof GlanceConflict) return VALIDATION_REFUSED.test(err.body ?? '');
  // A schema failure inside validation_data (e.g. a malformed value) is a 400 naming it.
  return err instanceof GlanceBadRequest && /validation_data/.test(err.body ?? '');
}

function refused(err: GlanceError): ValidationDataOutcome {
  return { status: 'rejected', reason: err.body ?? err.message, httpStatus: err.status ?? 0 };
}

export async function addLocationByPatch(
  images: ImageCalls,
  imageId: string,
  url: string,
  options: AddLocationOptions,
): Promise<AddLocationResult> {
  const metadata: Record<string, unknown> = { ...options.metadata };
  if (images.storeId) metadata.store = images.storeId;
  const { checksum, osHashAlgo, osHashValue, signal } = options;
  const add = (value: Record<string, unknown>) =>
    images.patch(imageId, [{ op: 'add', path: '/locations/-', value }], signal, true);

  // Glance's schema takes validation_data only with both os_hash fields; it then records all three
  // atomically with the location, and only while the image is queued.
  if (osHashAlgo !== undefined && osHashValue !== undefined) {
    const validation: Record<string, string> = { os_hash_algo: osHashAlgo, os_hash_value: osHashValue };
    if (checksum !== undefined) validation.checksum = checksum;
    try {
      const image = await add({ url, metadata, validation_data: validation });
      return { image, api: 'patch', validationData: { status: 'set' } };
    } catch (err) {
      // Glance checks validation_data before it touches the locations, so nothing was added: try without.
      if (!isValidationRefusal(err)) throw err;
      const image = await add({ url, metadata });
      return { image, api: 'patch', validationData: refused(err) };
    }
  }

  const image = await add({ url, metadata });
  const given = Object.entries({ checksum, os_hash_algo: osHashAlgo, os_hash_value: osHashValue }).filter(
    (e): e is [string, string] => e[1] !== undefined,
  );
  if (given.length === 0) return { image, api: 'patch', validationData: { status: 'not-requested' } };
  // Without both hashes the only way left is patching the attributes, which Glance may refuse (Zed: 403
  // read-only). The location is registered either way; the refusal is reported, not thrown.
  try {
    const updated = await images.update(
      imageId,
      given.map(([key, value]) => ({ op: 'replace' as const, path: `/${key}`, value })),
      { signal },
    );
    return { image: updated, api: 'patch', validationData: { status: 'set' } };
  } catch (err) {
    if (!(err instanceof GlanceForbidden || err instanceof GlanceBadRequest || err instanceof GlanceConflict)) {
      // The location is in already: whoever reads this must not take it for a location never added.
      throw new GlanceOutcomeUnknown({ method: 'PATCH', path: imagePath(imageId) }, 'the location was added, patching its checksums failed', { cause: err });
    }
    return { image, api: 'patch', validationData: refused(err) };
  }
}

export async function addLocationByPost(
  images: ImageCalls,
  imageId: string,
  url: string,
  options: AddLocationOptions,
): Promise<AddLocationResult> {
  // The 2.17 API has no metadata or store field (Glance finds the store from the URL) and no md5: it
  // computes checksum and os_hash itself, checking the os_hash given here.
  const body: Record<string, unknown> = { url };
  const hashes = options.osHashAlgo !== undefined || options.osHashValue !== undefined;
  if (hashes) body.validation_data = { os_hash_algo: options.osHashAlgo, os_hash_value: options.osHashValue };
  const sent = await images.transport.send({
    method: 'POST',
    path: `${imagePath(imageId)}/locations`,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: options.signal,
    service: true,
  });
  await sent.res.body.dump();
  let image: GlanceImage;
  try {
    image = await awaitLocationRecorded(images.transport, images.get, imageId, options.signal);
  } catch (err) {
    // Glance's location task said it failed: a clear answer (nothing recorded), passed on as is.
    if (hasCode(err, 'GLANCE_LOCATION_IMPORT_FAILED')) throw err;
    // Glance accepted the location (2xx): a failed read after it must not read as a refusal.
    throw new GlanceOutcomeUnknown(sent.details, 'the location was accepted, reading the image after it failed', { cause: err });
  }
  const requested = hashes || options.checksum !== undefined;
  return { image, api: 'post', validationData: { status: requested ? 'deferred' : 'not-requested' } };
}
