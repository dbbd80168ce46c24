// `snapstore snapshot --incremental` and `check` as operators run them (the compiled dist/cli.js, nova.conf
// and glance-api.conf), between pools of one cluster with --mode copy, registered in Glance: the second
// snapshot is made from the first image and stays exact after Glance deleted the first.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { IncrementalCheck, SnapshotResult } from '../../src/coordinator/index.js';
import { deleteGlanceImage, exportMd5 } from '../coordinator/helpers.js';
import { adminOf } from '../support/leftovers.js';
import { ownTestbed } from '../support/own-bed.js';
import { rbd, uniqueName } from '../support/testbed.js';

const env = ownTestbed({ glance: true });
const cli = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'snapstore-cli-inc-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const MiB = 1024 * 1024;

function snapstore(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { maxBuffer: 1 << 26 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('snapstore --incremental', () => {
  it('check says what the next snapshot sends; the second snapshot sends only that and outlives the first', async () => {
    const a = env.clusters.a;
    const nova = join(dir, 'nova.conf');
    writeFileSync(nova, `[libvirt]\nimages_type = rbd\nimages_rbd_pool = vms\nimages_rbd_ceph_conf = ${a.conf}\nrbd_user = nova\n[glance]\napi_servers = ${env.glance.url}\n`);
    const cfg = ['--config', nova, '--config', env.glance.conf];
    const name = uniqueName('cli-inc');
    const source = `rbd://${a.fsid}/vms/${name}`;
    await rbd(a, ['create', `vms/${name}`, '--size', '32M'], 'nova');
    const io = await (await adminOf(a)).openIoctx('vms');
    const disk = await io.openImage(name);
    try {
      await disk.write(0, Buffer.alloc(8 * MiB, 0x01));
      await disk.flush();
      const run = async (args: string[]) => {
        const r = await snapstore(args);
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        return JSON.parse(r.stdout) as unknown;
      };
      const none = (await run(['check', source, ...cfg, '--json'])) as { incremental: IncrementalCheck };
      expect(none.incremental).toMatchObject({ possible: false, from: null });
      const first = (await run(['snapshot', source, '--mode', 'copy', '--incremental', ...cfg, '--json'])) as SnapshotResult;
      expect(first).toMatchObject({ method: 'copy', incremental: null, fallbackReason: null });

      await disk.write(4 * MiB, Buffer.alloc(MiB, 0x02));
      await disk.flush();
      const plan = (await run(['check', source, ...cfg, '--json'])) as { incremental: IncrementalCheck };
      expect(plan.incremental).toMatchObject({ possible: true, from: first.imageId, bytesExpected: MiB });
      const human = await snapstore(['check', source, ...cfg]);
      expect(human.stdout).toContain(`incremental (--incremental): yes, from image ${first.imageId} (about ${MiB} bytes to send)`);

      const second = (await run(['snapshot', source, '--mode', 'copy', '--incremental', ...cfg, '--json'])) as SnapshotResult;
      expect(second.incremental).toEqual({ from: first.imageId, bytesSent: MiB });
      expect(second.glance?.status).toBe('active');
      const want = await exportMd5(a, `vms/${name}`);
      await deleteGlanceImage(env.glance.url, first.imageId);
      expect(await exportMd5(a, `images/${second.imageId}@snap`)).toBe(want);
      await deleteGlanceImage(env.glance.url, second.imageId);
    } finally {
      await disk.close();
      await io.close();
      await rbd(a, ['snap', 'purge', '--no-progress', `vms/${name}`], 'nova');
      await rbd(a, ['rm', '--no-progress', `vms/${name}`], 'nova');
    }
  });

  it('--flatten background across clusters: usable at once, Glance refuses to delete the first image until `flattener --once` flattens the second', async () => {
    const [a, b] = [env.clusters.a, env.clusters.b];
    // The disks in cluster b, the image store (Glance's) in cluster a.
    const nova = join(dir, 'nova-b.conf');
    writeFileSync(nova, `[libvirt]\nimages_type = rbd\nimages_rbd_pool = vms\nimages_rbd_ceph_conf = ${b.conf}\nrbd_user = nova\n[glance]\napi_servers = ${env.glance.url}\n`);
    const cfg = ['--config', nova, '--config', env.glance.conf];
    const name = uniqueName('cli-inc-bg');
    const source = `rbd://${b.fsid}/vms/${name}`;
    await rbd(b, ['create', `vms/${name}`, '--size', '32M'], 'nova');
    const io = await (await adminOf(b)).openIoctx('vms');
    const disk = await io.openImage(name);
    try {
      await disk.write(0, Buffer.alloc(8 * MiB, 0x01));
      await disk.flush();
      const run = async (args: string[]) => {
        const r = await snapstore(args);
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        return JSON.parse(r.stdout) as unknown;
      };
      const snapshot = ['snapshot', source, '--incremental', '--flatten', 'background', ...cfg, '--json'];
      const first = (await run(snapshot)) as SnapshotResult;
      expect(first).toMatchObject({ method: 'copy', incremental: null, flatten: 'done' });
      await disk.write(4 * MiB, Buffer.alloc(MiB, 0x02));
      await disk.flush();
      const second = (await run(snapshot)) as SnapshotResult;
      expect(second).toMatchObject({ incremental: { from: first.imageId, bytesSent: MiB }, flatten: 'pending', glance: { status: 'active' } });
      const want = await exportMd5(b, `vms/${name}`);
      expect(await exportMd5(a, `images/${second.imageId}@snap`)).toBe(want);

      // glance_store cannot unprotect the first image's snap while the second reads through it: 409, nothing removed.
      const refused = await fetch(`${env.glance.url}/v2/images/${first.imageId}`, { method: 'DELETE' });
      expect(refused.status).toBe(409);
      expect(await exportMd5(a, `images/${first.imageId}@snap`)).not.toBe(want);

      const flattened = (await run(['flattener', '--once', ...cfg, '--json'])) as { flattened: string[] };
      expect(flattened.flattened).toEqual([second.imageId]);
      await deleteGlanceImage(env.glance.url, first.imageId);
      expect(await exportMd5(a, `images/${second.imageId}@snap`)).toBe(want);
      await deleteGlanceImage(env.glance.url, second.imageId);
    } finally {
      await disk.close();
      await io.close();
      await rbd(b, ['snap', 'purge', '--no-progress', `vms/${name}`], 'nova');
      await rbd(b, ['rm', '--no-progress', `vms/${name}`], 'nova');
    }
  });
});
