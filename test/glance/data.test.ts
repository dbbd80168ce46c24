// Image data through the real glance-api: streamed uploads and downloads, byte ranges, memory held while
// streaming, and Glance's 204 for an image whose stored data is gone.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { beforeAll, describe, expect, it } from 'vitest';
import { type GlanceClient, GlanceNoData, GlanceRangeNotSupported, GlanceRequestFailed } from '../../src/glance/index.js';
import { uniqueName } from '../support/testbed.js';
import { collect, glanceTestFile, md5, randomData, removeRbdImage, sha512 } from './helpers.js';

// A glance-api of this file's own on pools of its own: the leftovers probe lists its whole image list and
// pools before and after each case (the shared Glance's change under other files meanwhile).
const { own, client: clientOf, cleanup } = glanceTestFile('glance-data');
let client: GlanceClient;
beforeAll(() => {
  client = clientOf();
});
const MiB = 1024 * 1024;

async function rawImage(prefix: string) {
  const image = await client.createImage({ name: uniqueName(prefix), diskFormat: 'raw', containerFormat: 'bare' });
  cleanup.image(image.id);
  return image;
}

describe('GlanceClient data (real glance-api)', () => {
  it('uploads 64 MiB from a Readable and downloads the same bytes; Glance records md5 and sha512', async () => {
    const data = randomData(64 * MiB);
    const image = await rawImage('glance-64m');
    // Small chunks: the source is pulled as the socket drains, not read whole.
    const source = Readable.from(
      (function* () {
        for (let off = 0; off < data.length; off += MiB) yield data.subarray(off, off + MiB);
      })(),
    );
    await client.upload(image.id, source, { size: data.length });
    const stored = await client.getImage(image.id);
    expect(stored).toMatchObject({ status: 'active', size: data.length, checksum: md5(data), os_hash_algo: 'sha512' });
    expect(stored.os_hash_value).toBe(sha512(data));

    const download = await client.download(image.id);
    expect(download.length).toBe(data.length);
    expect(download.rangeServedBy).toBeUndefined();
    const got = await collect(download.stream);
    expect(got.length).toBe(data.length);
    expect(got.equals(data)).toBe(true);

    // Zed's rbd store refuses ranges; the client cuts the range from the full stream instead.
    const start = 5 * MiB + 123;
    const end = 9 * MiB + 456;
    const ranged = await client.download(image.id, { range: { start, end } });
    expect(ranged.rangeServedBy).toBe('client');
    expect(ranged.length).toBe(end - start + 1);
    const slice = await collect(ranged.stream);
    expect(slice.equals(data.subarray(start, end + 1))).toBe(true);

    const tail = await client.download(image.id, { range: { start: data.length - 1000 } });
    expect((await collect(tail.stream)).equals(data.subarray(data.length - 1000))).toBe(true);

    await expect(
      client.download(image.id, { range: { start: 0, end: 9 }, rangeFallback: false }),
    ).rejects.toBeInstanceOf(GlanceRangeNotSupported);
  });

  // Peak RSS of an upload is bench/glance-upload.ts's figure; here: the bytes, sent without a known size.
  it('uploads 256 MiB from an async generator (chunked, no size) and downloads the same bytes', async () => {
    const image = await rawImage('glance-256m');
    const total = 256 * MiB;
    const sent = createHash('sha256');
    async function* generate() {
      for (let off = 0; off < total; off += MiB) {
        const chunk = randomData(MiB);
        sent.update(chunk);
        yield chunk;
      }
    }
    // No size: chunked transfer encoding, as for a source of unknown length.
    await client.upload(image.id, generate());
    expect(await client.getImage(image.id)).toMatchObject({ status: 'active', size: total });

    const download = await client.download(image.id);
    const received = createHash('sha256');
    let bytes = 0;
    for await (const chunk of download.stream) {
      received.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
    }
    expect(bytes).toBe(total);
    expect(received.digest('hex')).toBe(sent.digest('hex'));
  });

  it('fails an upload whose source stream errors with GlanceRequestFailed carrying the source error', async () => {
    const image = await rawImage('glance-srcerr');
    async function* broken() {
      yield Buffer.alloc(MiB, 1);
      throw new Error('disk read failed');
    }
    const err = await client.upload(image.id, broken()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GlanceRequestFailed);
    expect(String((err as Error).cause)).toMatch(/disk read failed/);
    // Glance must not have made the partial data the image's.
    // Glance notices the broken request on its own time (it is `saving` meanwhile), then puts the image back
    // to `queued`: never `active` with partial data.
    let after = await client.getImage(image.id);
    for (let i = 0; i < 300 && after.status === 'saving'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = await client.getImage(image.id);
    }
    expect(after.status).toBe('queued');
  });

  it('turns a 204 download (RBD data removed behind Glance) into GlanceNoData, not an empty image', async () => {
    const image = await rawImage('glance-204');
    const inPool = await own.poolImages();
    await client.upload(image.id, randomData(4 * MiB));
    // The own pool, listed whole: the upload added exactly the image's data, the removal took exactly it.
    expect(await own.poolImages()).toEqual([...inPool, image.id].sort());
    await removeRbdImage(own.cluster(), `${own.pools.images}/${image.id}`);
    expect(await own.poolImages()).toEqual(inPool);

    const err = await client.download(image.id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GlanceNoData);
    expect(err).toMatchObject({ code: 'GLANCE_NO_DATA', status: 204, method: 'GET', path: `/v2/images/${image.id}/file` });
  });
});
