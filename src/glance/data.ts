// Image data over the Glance transport: `PUT /v2/images/{id}/file` streamed with backpressure, and
// `GET /v2/images/{id}/file` as a stream, ranges asked of Glance or cut on the client when its store
// cannot serve them.
import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { SnapstoreError } from '../errors.js';
import { GlanceNoData, GlanceRangeNotSupported, errorForNetwork, type GlanceErrorDetails } from './errors.js';
import { imagePath } from './paths.js';
import { scrubCause, type GlanceTransport, type Sent } from './transport.js';
import type { ByteRange, DownloadOptions, ImageDownload, UploadOptions, UploadSource } from './types.js';

/**
 * `PUT /v2/images/{id}/file`: streams `data` to Glance with backpressure (never buffered whole, never
 * retried). Give `size` to send Content-Length; otherwise the body is chunked. With a storeId the data
 * goes to that backend (`X-Image-Meta-Store`).
 */
export async function uploadImage(t: GlanceTransport, storeId: string | undefined, id: string, data: UploadSource, options: UploadOptions = {}): Promise<void> {
  const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
  const size = options.size ?? (data instanceof Uint8Array ? data.byteLength : undefined);
  if (size !== undefined) headers['content-length'] = String(size);
  if (storeId) headers['x-image-meta-store'] = storeId;
  const sent = await t.send({
    method: 'PUT',
    path: `${imagePath(id)}/file`,
    headers,
    body: data,
    retry: false,
    signal: options.signal,
  });
  await sent.res.body.dump();
}

/**
 * `GET /v2/images/{id}/file` as a stream. A 204 (the record exists, its data is gone) is GlanceNoData, never
 * an empty image. A `range` is asked of Glance with a Range header; when the store cannot serve ranges the
 * client cuts it from the full stream (unless `rangeFallback: false`).
 */
export async function downloadImage(t: GlanceTransport, id: string, options: DownloadOptions = {}): Promise<ImageDownload> {
  const path = `${imagePath(id)}/file`;
  const { range } = options;
  if (range) checkRange(range);
  const headers: Record<string, string> = { accept: '*/*' };
  if (range) headers.range = `bytes=${range.start}-${range.end ?? ''}`;
  let sent: Sent;
  let servedBy: ImageDownload['rangeServedBy'];
  try {
    sent = await t.send({ method: 'GET', path, headers, signal: options.signal });
    servedBy = range ? 'server' : undefined;
  } catch (err) {
    if (!(err instanceof GlanceRangeNotSupported) || options.rangeFallback === false) throw err;
    sent = await t.send({ method: 'GET', path, headers: { accept: '*/*' }, signal: options.signal });
    servedBy = 'client';
  }
  const { res, details } = sent;
  if (res.statusCode === 204) {
    await res.body.dump();
    throw new GlanceNoData({ ...details, status: 204 });
  }
  if (range && res.statusCode !== 206) servedBy = 'client';
  const header = (name: string) => {
    const v = res.headers[name];
    return Array.isArray(v) ? v[0] : v;
  };
  const contentLength = header('content-length') === undefined ? undefined : Number(header('content-length'));
  let length = contentLength;
  let slice: { skip: number; take: number | undefined } | undefined;
  if (range && servedBy === 'client') {
    const stop = range.end === undefined ? contentLength : Math.min(range.end + 1, contentLength ?? Infinity);
    slice = { skip: range.start, take: stop === undefined ? undefined : Math.max(0, stop - range.start) };
    length = slice.take;
  }
  const stream = Readable.from(bodyChunks(res.body, details, sent.secrets, slice), { objectMode: false });
  return { stream, length, contentMd5: header('content-md5'), rangeServedBy: servedBy };
}

async function* bodyChunks(
  body: Dispatcher.ResponseData['body'],
  details: GlanceErrorDetails,
  secrets: string[],
  slice: { skip: number; take: number | undefined } | undefined,
): AsyncGenerator<Buffer, void, undefined> {
  let skip = slice?.skip ?? 0;
  let left = slice?.take ?? Infinity;
  try {
    for await (const raw of body as AsyncIterable<Buffer>) {
      let chunk = raw;
      if (skip > 0) {
        if (chunk.length <= skip) {
          skip -= chunk.length;
          continue;
        }
        chunk = chunk.subarray(skip);
        skip = 0;
      }
      if (chunk.length >= left) {
        yield chunk.subarray(0, left);
        return;
      }
      left -= chunk.length;
      yield chunk;
    }
  } catch (err) {
    throw errorForNetwork(details, scrubCause(err, secrets), 'download');
  } finally {
    if (!body.destroyed) body.destroy();
  }
}

function checkRange(range: ByteRange): void {
  const ok =
    Number.isSafeInteger(range.start) &&
    range.start >= 0 &&
    (range.end === undefined || (Number.isSafeInteger(range.end) && range.end >= range.start));
  if (!ok) throw new SnapstoreError('INVALID_ARGUMENT', `invalid byte range ${JSON.stringify(range)}`);
}
