// Image records on the real glance-api: create, get, update, list with pagination, delete, versions, and the
// HTTP errors Glance gives for them.
import { beforeAll, describe, expect, it } from 'vitest';
import {
  GlanceBadRequest,
  GlanceConflict,
  type GlanceError,
  GlanceForbidden,
  GlanceNotFound,
  GlanceUnsupportedMediaType,
  type GlanceClient,
} from '../../src/glance/index.js';
import { uniqueName } from '../support/testbed.js';
import { glanceTestFile } from './helpers.js';

// A glance-api of this file's own on pools of its own: the leftovers probe lists its whole image list and
// pools before and after each case (the shared Glance's change under other files meanwhile).
const { client: clientOf, cleanup } = glanceTestFile('glance-img');
let client: GlanceClient;
beforeAll(() => {
  client = clientOf();
});

const MISSING = '00000000-0000-4000-8000-000000000000';

describe('GlanceClient images (real glance-api)', () => {
  it('creates an image with formats, visibility, minimums, tags and extra properties, and gets it back', async () => {
    const name = uniqueName('glance-create');
    const created = await client.createImage({
      name,
      diskFormat: 'raw',
      containerFormat: 'bare',
      visibility: 'private',
      minDisk: 3,
      minRam: 512,
      tags: ['snapstore-test'],
      properties: { image_type: 'snapshot', snapstore_marker: name },
    });
    cleanup.image(created.id);
    expect(created.status).toBe('queued');
    const got = await client.getImage(created.id);
    expect(got).toMatchObject({
      id: created.id,
      name,
      disk_format: 'raw',
      container_format: 'bare',
      visibility: 'private',
      min_disk: 3,
      min_ram: 512,
      tags: ['snapstore-test'],
      image_type: 'snapshot',
      snapstore_marker: name,
    });
  });

  it('updates with JSON patch (replace, add, remove) and returns the new record', async () => {
    const image = await client.createImage({ name: uniqueName('glance-patch'), properties: { doomed: 'yes' } });
    cleanup.image(image.id);
    const updated = await client.updateImage(image.id, [
      { op: 'replace', path: '/name', value: 'renamed' },
      { op: 'add', path: '/disk_format', value: 'qcow2' },
      { op: 'add', path: '/owner_note', value: 'hello' },
      { op: 'remove', path: '/doomed' },
    ]);
    expect(updated.name).toBe('renamed');
    expect(updated.disk_format).toBe('qcow2');
    expect(updated.owner_note).toBe('hello');
    expect(updated).not.toHaveProperty('doomed');
    expect((await client.getImage(image.id)).name).toBe('renamed');
  });

  it('refuses to patch a read-only attribute with GlanceForbidden', async () => {
    const image = await client.createImage({ name: uniqueName('glance-ro') });
    cleanup.image(image.id);
    const err = await client
      .updateImage(image.id, [{ op: 'replace', path: '/checksum', value: '0'.repeat(32) }])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GlanceForbidden);
    expect(err).toMatchObject({ code: 'GLANCE_FORBIDDEN', status: 403, method: 'PATCH', path: `/v2/images/${image.id}` });
    expect((err as GlanceError).body).toMatch(/checksum.*read-only/);
  });

  it('deletes an image; a second delete is GlanceNotFound, or false with ignoreMissing', async () => {
    const image = await client.createImage({ name: uniqueName('glance-del') });
    cleanup.image(image.id);
    expect(await client.deleteImage(image.id)).toBe(true);
    await expect(client.getImage(image.id)).rejects.toBeInstanceOf(GlanceNotFound);
    await expect(client.deleteImage(image.id)).rejects.toBeInstanceOf(GlanceNotFound);
    expect(await client.deleteImage(image.id, { ignoreMissing: true })).toBe(false);
  });

  it('maps a missing image to GlanceNotFound with status, method, path and a text excerpt', async () => {
    const err = await client.getImage(MISSING).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GlanceNotFound);
    const e = err as GlanceNotFound;
    expect(e.code).toBe('GLANCE_NOT_FOUND');
    expect(e.status).toBe(404);
    expect(e.method).toBe('GET');
    expect(e.path).toBe(`/v2/images/${MISSING}`);
    expect(e.body).toBe(`No image found with ID ${MISSING}`);
    expect(e.body).not.toMatch(/<|>/);
    expect(e.context).toMatchObject({ status: 404, method: 'GET', attempts: 1 });
  });

  it('maps a JSON patch sent as application/json to GlanceUnsupportedMediaType (415)', async () => {
    const image = await client.createImage({ name: uniqueName('glance-415') });
    cleanup.image(image.id);
    const err = await client
      .rawRequest({
        method: 'PATCH',
        path: `/v2/images/${image.id}`,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify([{ op: 'replace', path: '/name', value: 'x' }]),
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GlanceUnsupportedMediaType);
    expect(err).toMatchObject({ code: 'GLANCE_UNSUPPORTED_MEDIA_TYPE', status: 415 });
    expect((await client.getImage(image.id)).name).not.toBe('x');
  });

  it('maps an upload before disk_format is set to GlanceBadRequest (400) and leaves the image queued', async () => {
    const image = await client.createImage({ name: uniqueName('glance-400') });
    cleanup.image(image.id);
    const err = await client.upload(image.id, Buffer.alloc(4096, 1)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GlanceBadRequest);
    expect(err).toMatchObject({ code: 'GLANCE_BAD_REQUEST', status: 400, method: 'PUT' });
    expect((err as GlanceError).body).toMatch(/disk_format, container_format must be set prior to saving data/);
    expect((await client.getImage(image.id)).status).toBe('queued');

    // Streamed: Glance answers before reading the body; the client reports the 400, not a broken socket,
    // and stops pulling the source.
    let pulled = 0;
    async function* big() {
      for (let i = 0; i < 256; i++) {
        pulled++;
        yield Buffer.alloc(1024 * 1024, 2);
      }
    }
    const streamed = await client.upload(image.id, big()).catch((e: unknown) => e);
    expect(streamed).toBeInstanceOf(GlanceBadRequest);
    expect(pulled).toBeLessThan(256);
    expect((await client.getImage(image.id)).status).toBe('queued');
  });

  it('maps an upload to an active image to GlanceConflict (409), keeping the first data', async () => {
    const image = await client.createImage({ name: uniqueName('glance-409'), diskFormat: 'raw', containerFormat: 'bare' });
    cleanup.image(image.id);
    await client.upload(image.id, Buffer.alloc(8192, 7));
    const err = await client.upload(image.id, Buffer.alloc(4096, 9)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GlanceConflict);
    expect(err).toMatchObject({ code: 'GLANCE_CONFLICT', status: 409 });
    expect((err as GlanceError).body).toMatch(/active to saving is not allowed/);
    const after = await client.getImage(image.id);
    expect(after).toMatchObject({ status: 'active', size: 8192 });
  });

  it('lists more images than a page by following next links, filtered to this test by tag', async () => {
    const tag = uniqueName('glance-page');
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) {
      ids.push(cleanup.image((await client.createImage({ name: `${tag}-${i}`, tags: [tag] })).id));
    }
    const pages: string[][] = [];
    for await (const page of client.listImagePages({ tags: [tag], pageSize: 3 })) pages.push(page.map((i) => i.id));
    expect(pages.map((p) => p.length)).toEqual([3, 3, 1]);
    expect(pages.flat().sort()).toEqual([...ids].sort());

    const all = await client.listAllImages({ tags: [tag], pageSize: 2, sortKey: 'name', sortDir: 'asc' });
    expect(all.map((i) => i.name)).toEqual(ids.map((_, i) => `${tag}-${i}`));

    const seen: string[] = [];
    for await (const image of client.listImages({ tags: [tag], pageSize: 4 })) {
      seen.push(image.id);
      if (seen.length === 5) break;
    }
    expect(seen).toHaveLength(5);
    expect(await client.listAllImages({ tags: [tag], properties: { no_such_property: 'x' } })).toEqual([]);
  });

  it('reads the image API versions and says whether the 2.17 locations API exists', async () => {
    const versions = await client.versions();
    const current = versions.filter((v) => v.status === 'CURRENT');
    expect(current).toHaveLength(1);
    // The test bed runs Glance Zed: image API 2.16, PATCH locations only.
    expect(current[0]).toMatchObject({ id: 'v2.16', major: 2, minor: 16 });
    expect(versions.some((v) => v.id === 'v2.0' && v.status === 'SUPPORTED')).toBe(true);
    expect(await client.supportsLocationsApi()).toBe(false);
  });
});
