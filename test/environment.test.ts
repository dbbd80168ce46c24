// Proves the test bed itself: two independent clusters with the users operators make, and a real Glance.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { rbd, rbdJson, testbed, uniqueName } from './support/testbed.js';

const env = testbed();

describe('test bed', () => {
  it('runs two clusters with different fsids', () => {
    expect(env.clusters.a.fsid).toMatch(/^[0-9a-f-]{36}$/);
    expect(env.clusters.b.fsid).toMatch(/^[0-9a-f-]{36}$/);
    expect(env.clusters.a.fsid).not.toBe(env.clusters.b.fsid);
    expect(env.clusters.a.cloneFormat).toBe(2);
    expect(env.clusters.b.cloneFormat).toBe(1);
  });

  for (const name of ['a', 'b'] as const) {
    describe(`cluster ${name}`, () => {
      const cluster = env.clusters[name];

      it('lets client.nova create an image in vms and see it listed', async () => {
        const image = uniqueName('env-smoke');
        await rbd(cluster, ['create', `vms/${image}`, '--size', '16M'], 'nova');
        try {
          expect(await rbdJson<string[]>(cluster, ['ls', 'vms'], 'nova')).toContain(image);
        } finally {
          await rbd(cluster, ['rm', `vms/${image}`], 'nova');
        }
        expect(await rbdJson<string[]>(cluster, ['ls', 'vms'], 'nova')).not.toContain(image);
      });

      it('refuses image creation in images to client.nova-ro but lets it read', async () => {
        const image = uniqueName('env-ro');
        await expect(rbd(cluster, ['create', `images/${image}`, '--size', '16M'], 'nova-ro')).rejects.toThrow(
          /Operation not permitted/,
        );
        expect(await rbdJson<string[]>(cluster, ['ls', 'images'], 'nova-ro')).not.toContain(image);
      });

      it('confines client.glance to the images pool', async () => {
        await expect(rbd(cluster, ['ls', 'vms'], 'glance')).rejects.toThrow(/Operation not permitted/);
        await expect(rbd(cluster, ['ls', 'images'], 'glance')).resolves.toBeDefined();
      });
    });
  }
});

describe('glance-api', () => {
  it('stores 8 MiB through PUT /file in the rbd store and returns the same bytes', async () => {
    const data = randomBytes(8 * 1024 * 1024);
    const created = await fetch(`${env.glance.url}/v2/images`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: uniqueName('env-glance'), disk_format: 'raw', container_format: 'bare' }),
    });
    expect(created.status).toBe(201);
    const image = (await created.json()) as { id: string; status: string };
    expect(image.status).toBe('queued');
    try {
      const put = await fetch(`${env.glance.url}/v2/images/${image.id}/file`, {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream' },
        body: data,
      });
      expect(put.status).toBe(204);
      const got = await fetch(`${env.glance.url}/v2/images/${image.id}/file`);
      expect(got.status).toBe(200);
      expect(Buffer.from(await got.arrayBuffer()).equals(data)).toBe(true);
      // Glance's own rbd store wrote it into cluster a's images pool, with a protected `snap`.
      const snaps = await rbdJson<Array<{ name: string; protected: string }>>(env.clusters.a, [
        'snap', 'ls', `images/${image.id}`,
      ]);
      expect(snaps.map((s) => [s.name, s.protected])).toEqual([['snap', 'true']]);
    } finally {
      const del = await fetch(`${env.glance.url}/v2/images/${image.id}`, { method: 'DELETE' });
      expect(del.status).toBe(204);
    }
    expect(await rbdJson<string[]>(env.clusters.a, ['ls', 'images'])).not.toContain(image.id);
  });
});
