// The snapstore command as operators run it: the compiled dist/cli.js (npm test builds it first), real
// config files, the test bed's clusters and Glance.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import type { CoordinatorEvent, SnapshotResult } from '../../src/coordinator/index.js';
import { withFaults, type FaultPoint } from '../../src/coordinator/faults.js';
import { coordinator, deleteGlanceImage, rbdTarget, sourceConfig } from '../coordinator/helpers.js';
import { leftoversOf, resultLeaves } from '../support/leftovers.js';
import { ownTestbed } from '../support/own-bed.js';
import { rbd, uniqueName, type ClusterInfo } from '../support/testbed.js';

const env = ownTestbed({ glance: true });
const leftovers = leftoversOf(env);
const cli = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'snapstore-cli-'));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function snapstore(args: string[], extraEnv: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { env: { ...process.env, ...extraEnv }, maxBuffer: 1 << 26 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

function stdoutBytes(args: string[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [cli, ...args], { encoding: 'buffer', maxBuffer: 1 << 26 }, (err, stdout) =>
      err ? reject(err) : resolve(stdout),
    );
  });
}

function conf(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

// The config files' paths are known at collection time (the usage cases name them); their contents name
// this file's own test bed, which exists once its beforeAll has run.
let a: ClusterInfo;
const novaConf = join(dir, 'nova.conf');
const novaRoConf = join(dir, 'nova-ro.conf');
const fileStoreConf = join(dir, 'glance-file.conf');
const fileStoreDir = join(dir, 'images');
beforeAll(() => {
  a = env.clusters.a;
  conf('nova.conf', `[libvirt]\nimages_type = rbd\nimages_rbd_pool = vms\nimages_rbd_ceph_conf = ${a.conf}\nrbd_user = nova\n[glance]\napi_servers = ${env.glance.url}\n`);
  conf('nova-ro.conf', `[libvirt]\nimages_rbd_pool = vms\nimages_rbd_ceph_conf = ${a.conf}\nrbd_user = nova-ro\n`);
  conf('glance-file.conf', `[glance_store]\ndefault_store = file\nfilesystem_store_datadir = ${fileStoreDir}\n`);
});

function expectCleanFailure(r: Run, code: 1 | 2, errorCode: string): void {
  expect(r.code).toBe(code);
  expect(r.stdout).toBe('');
  const lines = r.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(new RegExp(`^snapstore: .*\\[${errorCode}\\]$`));
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

describe('snapstore usage', () => {
  it('prints help with exit 0', async () => {
    const r = await snapstore(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^usage: snapstore <command>/);
  });

  const bad: Array<[string, string[]]> = [
    ['no command', []],
    ['an unknown command', ['frobnicate']],
    ['an unknown flag', ['check', 'rbd://x/vms/d', '--frob']],
    ['a bad --mode', ['snapshot', 'rbd://x/vms/d', '--mode', 'fast', '--config', novaConf]],
    ['a bad --checksums', ['snapshot', 'rbd://x/vms/d', '--checksums', 'maybe', '--config', novaConf]],
    ['a missing SOURCE', ['snapshot', '--config', novaConf]],
    ['two SOURCEs', ['check', 'a', 'b', '--config', novaConf]],
    ['a bad --image-id', ['add', '-', '--image-id', '../etc', '--config', fileStoreConf]],
    ['a bad --size', ['add', '-', '--size', '-3', '--config', fileStoreConf]],
    ['no --config', ['size', 'file:///tmp/x']],
    ['--group on another command', ['gc', '--group', '--config', novaConf]],
    ['--group without a SOURCE', ['snapshot', '--group', '--config', novaConf]],
    ['--group with --image-id', ['snapshot', 'a', 'b', '--group', '--image-id', 'x', '--config', novaConf]],
    ['--group with --flatten background', ['snapshot', 'a', 'b', '--group', '--flatten', 'background', '--config', novaConf]],
  ];
  for (const [what, args] of bad) {
    it(`rejects ${what} with one line and exit 2`, async () => expectCleanFailure(await snapstore(args), 2, 'USAGE'));
  }

  it('reports config errors naming the file and key, exit 2', async () => {
    const broken = conf('broken-glance.conf', '[glance_store]\ndefault_store = rbd\nrbd_store_ceph_conf = /nonexistent/ceph.conf\n');
    const r = await snapstore(['size', 'rbd://x', '--config', broken]);
    expectCleanFailure(r, 2, 'CONFIG_INVALID');
    expect(r.stderr).toContain('rbd_store_ceph_conf');
    expect(r.stderr).toContain(broken);
    expectCleanFailure(await snapstore(['size', 'rbd://x', '--config', join(dir, 'missing.conf')]), 2, 'CONFIG_INVALID');
  });

  it('with --json prints exactly one JSON object on stdout, also for errors', async () => {
    const r = await snapstore(['size', 'rbd://admin:AQBsecretsecretsecretsecretsecretsecret==@x/y/z/snap', '--config', fileStoreConf, '--json']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('');
    const body = JSON.parse(r.stdout) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('BAD_LOCATION');
    expect(r.stdout).not.toContain('AQBsecret');
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
  });
});

describe('snapstore add/get/size/delete', () => {
  const data = Buffer.concat([randomBytes(1 << 20), Buffer.alloc(3 << 20), randomBytes(12345)]);
  const input = join(dir, 'input.raw');
  writeFileSync(input, data);
  const rbdStoreConf = join(dir, 'glance-rbd.conf');
  beforeAll(() => {
    conf('glance-rbd.conf', `[glance_store]\ndefault_store = rbd\nrbd_store_pool = images\nrbd_store_user = glance\nrbd_store_ceph_conf = ${a.conf}\n`);
  });

  for (const [name, config] of [['file', fileStoreConf], ['rbd', rbdStoreConf]] as const) {
    it(`round-trips an image through the ${name} store`, async () => {
      const id = uniqueName('cli-add');
      const nothing = await leftovers.snapshot({ dirs: [fileStoreDir] });
      const added = await snapstore(['add', input, '--image-id', id, '--config', config, '--json']);
      expect(added.stderr).toBe('');
      expect(added.code).toBe(0);
      const result = JSON.parse(added.stdout) as { imageId: string; location: string; size: number };
      expect(result.imageId).toBe(id);
      expect(result.size).toBe(data.length);
      expect(result.location).toMatch(name === 'rbd' ? new RegExp(`^rbd://${a.fsid}/images/${id}/snap$`) : /^file:\/\//);

      const size = await snapstore(['size', result.location, '--config', config]);
      expect(size.stdout.trim()).toBe(String(data.length));

      const out = join(dir, `${id}.out`);
      expect((await snapstore(['get', result.location, '-o', out, '--config', config])).code).toBe(0);
      expect(readFileSync(out).equals(data)).toBe(true);
      const piped = await stdoutBytes(['get', result.location, '--config', config]);
      expect(piped.equals(data)).toBe(true);

      expect((await snapstore(['delete', result.location, '--config', config])).code).toBe(0);
      expectCleanFailure(await snapstore(['size', result.location, '--config', config]), 2, 'NOT_FOUND');
      expectCleanFailure(await snapstore(['get', result.location, '-o', join(dir, `${id}.again`), '--config', config]), 2, 'NOT_FOUND');
      expect(existsSync(join(dir, `${id}.again`))).toBe(false);
      await leftovers.expectUnchanged(nothing);
    });
  }
});

describe('snapstore check and snapshot', () => {
  async function disk(): Promise<string> {
    const name = uniqueName('cli-disk');
    await rbd(a, ['create', `vms/${name}`, '--size', '64M'], 'nova');
    await rbd(a, ['bench', '--io-type', 'write', '--io-size', '1M', '--io-total', '8M', '--io-pattern', 'rand', `vms/${name}`], 'nova');
    return name;
  }

  it('checks, then snapshots directly into Glance with the operator files', async () => {
    const name = await disk();
    const source = `rbd://${a.fsid}/vms/${name}`;
    const nothing = await leftovers.snapshot();
    try {
      const plan = await snapstore(['check', source, '--config', novaConf, '--config', env.glance.conf, '--json']);
      expect(plan.code).toBe(0);
      expect((JSON.parse(plan.stdout) as { method: string }).method).toBe('direct');

      const r = await snapstore(['snapshot', source, '--name', name, '--config', novaConf, '--config', env.glance.conf, '--json']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const result = JSON.parse(r.stdout) as { imageId: string; location: string; method: string; fallbackReason: null; sizeBytes: number; glance: { id: string; status: string } };
      expect(result.method).toBe('direct');
      expect(result.fallbackReason).toBeNull();
      expect(result.sizeBytes).toBe(64 << 20);
      expect(result.glance.status).toBe('active');
      expect(result.location).toBe(`rbd://${a.fsid}/images/${result.imageId}/snap`);
      const image = (await (await fetch(`${env.glance.url}/v2/images/${result.glance.id}`)).json()) as { direct_url: string; size: number };
      expect(image.direct_url).toBe(result.location);
      await leftovers.expectUnchanged(nothing, resultLeaves(result as unknown as SnapshotResult, env.glance.url));
      await deleteGlanceImage(env.glance.url, result.glance.id);
      await leftovers.expectUnchanged(nothing);
    } finally {
      await rbd(a, ['rm', '--no-progress', `vms/${name}`], 'nova');
    }
  });

  it('check --group says copy for each disk and why; snapshot --group makes one image per disk with the group id', async () => {
    const names = [await disk(), await disk()];
    const sources = names.map((n) => `rbd://${a.fsid}/vms/${n}`);
    const nothing = await leftovers.snapshot();
    try {
      const plan = await snapstore(['check', ...sources, '--group', '--config', novaConf, '--config', env.glance.conf, '--json']);
      expect(plan.code).toBe(0);
      const p = JSON.parse(plan.stdout) as { possible: boolean; disks: Array<{ source: string; method: string; reasons: Array<{ code: string }> }> };
      expect(p.possible).toBe(true);
      expect(p.disks.map((d) => [d.source, d.method])).toEqual(sources.map((s) => [s, 'copy']));
      expect(p.disks[0]!.reasons.map((r) => r.code)).toContain('GROUP_SNAP_CLONE');

      const r = await snapstore(['snapshot', ...sources, '--group', '--name', 'g', '--config', novaConf, '--config', env.glance.conf, '--json']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const result = JSON.parse(r.stdout) as { groupId: string; images: Array<SnapshotResult & { source: string }> };
      expect(result.images.map((i) => i.source)).toEqual(sources);
      for (const img of result.images) {
        const g = (await (await fetch(`${env.glance.url}/v2/images/${img.imageId}`)).json()) as Record<string, unknown>;
        expect(g.snapstore_group).toBe(result.groupId);
      }
      await leftovers.expectUnchanged(nothing, result.images.flatMap((i) => resultLeaves(i, env.glance.url)));
      for (const img of result.images) await deleteGlanceImage(env.glance.url, img.imageId);
      await leftovers.expectUnchanged(nothing);
    } finally {
      for (const n of names) await rbd(a, ['rm', '--no-progress', `vms/${n}`], 'nova');
    }
  });

  it('copies into a file store with --checksums inline and prints them; the default (no Glance) computes none', async () => {
    const name = await disk();
    const source = `rbd://${a.fsid}/vms/${name}`;
    const nothing = await leftovers.snapshot({ dirs: [fileStoreDir] });
    try {
      const noGlance = conf('nova-no-glance.conf', `[libvirt]\nimages_type = rbd\nimages_rbd_pool = vms\nimages_rbd_ceph_conf = ${a.conf}\nrbd_user = nova\n`);
      const inline = await snapstore(['snapshot', source, '--mode', 'copy', '--checksums', 'inline', '--config', noGlance, '--config', fileStoreConf, '--json']);
      expect(inline.stderr).toBe('');
      expect(inline.code).toBe(0);
      const r = JSON.parse(inline.stdout) as { location: string; checksums: { checksum: string; multihash: string; hashAlgo: string } };
      const bytes = readFileSync(fileURLToPath(r.location));
      expect(r.checksums).toEqual({
        checksum: createHash('md5').update(bytes).digest('hex'),
        multihash: createHash('sha512').update(bytes).digest('hex'),
        hashAlgo: 'sha512',
      });
      const plain = await snapstore(['snapshot', source, '--mode', 'copy', '--config', noGlance, '--config', fileStoreConf, '--json']);
      expect(plain.code).toBe(0);
      const p = JSON.parse(plain.stdout) as { location: string; checksums: unknown };
      expect(p.checksums).toBeNull();
      expect(readFileSync(fileURLToPath(p.location)).equals(bytes)).toBe(true);
      for (const loc of [r.location, p.location]) expect((await snapstore(['delete', loc, '--config', fileStoreConf])).code).toBe(0);
      await leftovers.expectUnchanged(nothing);
    } finally {
      await rbd(a, ['rm', '--no-progress', `vms/${name}`], 'nova');
    }
  });

  it('says why it copies when the source user cannot write the image pool, with the fix', async () => {
    const name = await disk();
    try {
      const r = await snapstore(['check', `rbd://${a.fsid}/vms/${name}`, '--config', novaRoConf, '--config', fileStoreConf]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^method: copy/);
      const human = await snapstore(['check', `rbd://${a.fsid}/vms/${name}`, '--config', novaRoConf, '--config', conf('glance-ro.conf', `[glance_store]\ndefault_store = rbd\nrbd_store_user = glance\nrbd_store_ceph_conf = ${a.conf}\n`)]);
      expect(human.stdout).toMatch(/^method: copy/);
      expect(human.stdout).toContain('ceph auth caps client.nova-ro');
    } finally {
      await rbd(a, ['rm', '--no-progress', `vms/${name}`], 'nova');
    }
  });

  it('fails a missing disk with exit 2 and leaves nothing behind', async () => {
    const missing = uniqueName('cli-missing');
    const nothing = await leftovers.snapshot();
    const r = await snapstore(['snapshot', `rbd://${a.fsid}/vms/${missing}`, '--config', novaConf, '--config', env.glance.conf]);
    expectCleanFailure(r, 2, 'SOURCE_NOT_FOUND');
    await leftovers.expectUnchanged(nothing);
  });

  it('gc --dry-run lists a dead run\'s leftovers without removing them; gc then removes them', async () => {
    // A real leftover: the run record of a finished snapshot that could not be removed at the end (injected),
    // of a run whose process has since gone (its record names a process start time that no process has).
    const name = await disk();
    const events: CoordinatorEvent[] = [];
    const c = coordinator(withFaults({ source: sourceConfig(a), target: rbdTarget(a) }, (p: FaultPoint) => {
      if (p.step === 'unrecord' && p.when === 'before') throw new Error('injected: the run record stays');
    }), events);
    let imageId = '';
    try {
      imageId = (await c.snapshot(`rbd://${a.fsid}/vms/${name}`)).imageId;
    } finally {
      await c.close();
    }
    const [runId] = events.flatMap((e) => (e.type === 'run' ? [e.runId] : []));
    const key = `snapstore.run.${runId}`;
    const record = JSON.parse((await rbd(a, ['image-meta', 'get', `vms/${name}`, key])).trim()) as { owner: object };
    await rbd(a, ['image-meta', 'set', `vms/${name}`, key, JSON.stringify({ ...record, owner: { ...record.owner, pidStart: 'gone' } })], 'nova');
    const planted = await leftovers.snapshot();
    expect(planted.listing.rbd[a.fsid]!.vms!.images[name]).toEqual({ snapshots: [], meta: [key] });

    // The least --older-than the CLI accepts (two lease periods): the journal's verdict, not the age, decides here.
    const dry = await snapstore(['gc', '--dry-run', '--older-than', '120', '--config', novaConf, '--config', env.glance.conf, '--json']);
    expect(dry.code).toBe(0);
    const report = JSON.parse(dry.stdout) as { dryRun: boolean; found: Array<{ kind: string; runId: string }>; removed: unknown[] };
    expect(report.dryRun).toBe(true);
    expect(report.found.map((l) => l.runId)).toEqual(report.found.map(() => runId));
    expect(report.found.map((l) => l.kind)).toContain('run-record');
    expect(report.removed).toEqual([]);
    await leftovers.expectUnchanged(planted);

    const real = await snapstore(['gc', '--older-than', '120', '--config', novaConf, '--config', env.glance.conf, '--json']);
    expect(real.code).toBe(0);
    expect((JSON.parse(real.stdout) as { removed: Array<{ kind: string }> }).removed.map((l) => l.kind)).toContain('run-record');
    const after = await leftovers.snapshot();
    expect(after.listing.rbd[a.fsid]!.vms!.images[name]).toEqual({ snapshots: [], meta: [] });
    // The snapshot itself was finished: gc leaves the image alone.
    expect(after.listing.rbd[a.fsid]!.images!.images[imageId]).toEqual({ snapshots: ['user:snap'], meta: [] });
  });
});


describe('snapstore flattener', () => {
  // The image store's user must read `vms` while an instant snapshot is pending (the test bed's glance may not).
  const novaOnly = join(dir, 'nova-instant.conf');
  const storeAsNova = join(dir, 'glance-as-nova.conf');
  beforeAll(() => {
    conf('nova-instant.conf', `[libvirt]\nimages_rbd_pool = vms\nimages_rbd_ceph_conf = ${a.conf}\nrbd_user = nova\n`);
    conf('glance-as-nova.conf', `[glance_store]\ndefault_store = rbd\nrbd_store_pool = images\nrbd_store_user = nova\nrbd_store_ceph_conf = ${a.conf}\n`);
  });

  it('finishes an instant snapshot (snapshot --flatten background, then flattener --once); a polling flattener stops on SIGTERM', async () => {
    const name = uniqueName('cli-instant');
    await rbd(a, ['create', `vms/${name}`, '--size', '64M'], 'nova');
    await rbd(a, ['bench', '--io-type', 'write', '--io-size', '1M', '--io-total', '8M', '--io-pattern', 'rand', `vms/${name}`], 'nova');
    const cfg = ['--config', novaOnly, '--config', storeAsNova];
    const nothing = await leftovers.snapshot();
    let id = '';
    try {
      const check = await snapstore(['check', `vms/${name}`, ...cfg]);
      expect(check.stdout).toContain('instant (--flatten background): possible');
      const r = await snapstore(['snapshot', `vms/${name}`, '--flatten', 'background', ...cfg, '--json']);
      expect(r.stderr).toBe('');
      const result = JSON.parse(r.stdout) as { imageId: string; location: string; method: string; flatten: string };
      id = result.imageId;
      expect(result).toMatchObject({ method: 'direct', flatten: 'pending' });
      expect(JSON.parse(await rbd(a, ['info', `images/${id}`, '--format', 'json'])).parent).toBeDefined();

      // A polling flattener for another (absent) image starts, and SIGTERM ends it cleanly.
      const polling = execFile(process.execPath, [cli, 'flattener', 'no-such-image', ...cfg]);
      const stopped = new Promise<{ code: number | null; stdout: string }>((resolve) => {
        let stdout = '';
        polling.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
        polling.on('exit', (code) => resolve({ code, stdout }));
      });
      await new Promise<void>((resolve) => polling.stderr!.on('data', (d: Buffer) => d.toString().includes('watching pool') && resolve()));
      polling.kill('SIGTERM');
      expect(await stopped).toEqual({ code: 0, stdout: 'flattener stopped\n' });

      const once = await snapstore(['flattener', id, '--once', ...cfg, '--json']);
      expect(once.code).toBe(0);
      expect(JSON.parse(once.stdout)).toEqual({ flattened: [id], skipped: [], failed: [] });
      expect(JSON.parse(await rbd(a, ['info', `images/${id}`, '--format', 'json'])).parent).toBeUndefined();
      expect((await snapstore(['delete', result.location, ...cfg])).code).toBe(0);
      await leftovers.expectUnchanged(nothing);
    } finally {
      await rbd(a, ['rm', '--no-progress', `vms/${name}`], 'nova');
    }
  });
});
