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
import { type ClusterInfo, rbd, uniqueName } from '../support/testbed.js';
import type { Image } from 'ceph-rbd-napi';

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

/** `snapstore ARGS` that must succeed quietly; its --json output. */
async function run(args: string[]): Promise<unknown> {
  const r = await snapstore(args);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as unknown;
}

/**
 * A 32 MiB disk of nova's in `disks` with 8 MiB written, a nova.conf naming that cluster, and Glance's
 * config; `body` gets the CLI's --config arguments, the disk's source URL and an open handle; the disk goes after.
 */
async function withCliDisk(disks: ClusterInfo, prefix: string, body: (cfg: string[], source: string, disk: Image) => Promise<void>): Promise<void> {
  const nova = join(dir, `nova-${prefix}.conf`);
  writeFileSync(nova, `[libvirt]\nimages_type = rbd\nimages_rbd_pool = vms\nimages_rbd_ceph_conf = ${disks.conf}\nrbd_user = nova\n[glance]\napi_servers = ${env.glance.url}\n`);
  const name = uniqueName(prefix);
  await rbd(disks, ['create', `vms/${name}`, '--size', '32M'], 'nova');
  const io = await (await adminOf(disks)).openIoctx('vms');
  const disk = await io.openImage(name);
  try {
    await disk.write(0, Buffer.alloc(8 * MiB, 0x01));
    await disk.flush();
    await body(['--config', nova, '--config', env.glance.conf], `rbd://${disks.fsid}/vms/${name}`, disk);
  } finally {
    await disk.close();
    await io.close();
    await rbd(disks, ['snap', 'purge', '--no-progress', `vms/${name}`], 'nova');
    await rbd(disks, ['rm', '--no-progress', `vms/${name}`], 'nova');
  }
}

describe('snapstore --incremental', () => {
  it('check says what the next snapshot sends; the second snapshot sends only that and outlives the first', async () => {
    const a = env.clusters.a;
    await withCliDisk(a, 'cli-inc', async (cfg, source, disk) => {
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
      const want = await exportMd5(a, source.slice(source.indexOf('/vms/') + 1));
      await deleteGlanceImage(env.glance.url, first.imageId);
      expect(await exportMd5(a, `images/${second.imageId}@snap`)).toBe(want);

      // Without --json the operator is told why the image was flattened through snapstore (no ceph-mgr here).
      await disk.write(8 * MiB, Buffer.alloc(MiB, 0x03));
      await disk.flush();
      const third = await snapstore(['snapshot', source, '--mode', 'copy', '--incremental', ...cfg]);
      expect(third.code).toBe(0);
      const thirdId = /^image (\S+) stored by copy/m.exec(third.stdout)?.[1] ?? '?';
      expect(third.stdout).toContain(`incremental from image ${second.imageId}: ${MiB} bytes sent`);
      expect(third.stderr).toMatch(new RegExp(`^flattened ${thirdId} through snapstore, not ceph-mgr: no ceph-mgr is active\\b.*\\n$`));
      await deleteGlanceImage(env.glance.url, second.imageId);
      await deleteGlanceImage(env.glance.url, thirdId);
    });
  });

  it('--flatten background across clusters: usable at once, Glance refuses to delete the first image until `flattener --once` flattens the second', async () => {
    const [a, b] = [env.clusters.a, env.clusters.b];
    // The disks in cluster b, the image store (Glance's) in cluster a.
    await withCliDisk(b, 'cli-inc-bg', async (cfg, source, disk) => {
      const snapshot = ['snapshot', source, '--incremental', '--flatten', 'background', ...cfg, '--json'];
      const first = (await run(snapshot)) as SnapshotResult;
      expect(first).toMatchObject({ method: 'copy', incremental: null, flatten: 'done' });
      await disk.write(4 * MiB, Buffer.alloc(MiB, 0x02));
      await disk.flush();
      const second = (await run(snapshot)) as SnapshotResult;
      expect(second).toMatchObject({ incremental: { from: first.imageId, bytesSent: MiB }, flatten: 'pending', glance: { status: 'active' } });
      const want = await exportMd5(b, source.slice(source.indexOf('/vms/') + 1));
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
    });
  });
});
