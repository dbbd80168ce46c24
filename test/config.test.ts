import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.js';
import { ConfigError } from '../src/config/ini.js';

const dir = mkdtempSync(join(tmpdir(), 'snapstore-config-'));
const cephConf = join(dir, 'ceph.conf');
writeFileSync(cephConf, '[global]\nfsid = 00000000-0000-0000-0000-000000000000\n');

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

const nova = file(
  'nova.conf',
  `[DEFAULT]
debug = False
transport_url = rabbit://nova:secret@127.0.0.1:5672/
[libvirt]
virt_type = kvm
images_type = rbd
images_rbd_pool = vms
images_rbd_ceph_conf = ${cephConf}
rbd_user = nova
rbd_secret_uuid = 457eb676-33da-42ec-9a8c-9293d545c337
[glance]
api_servers = http://127.0.0.1:9292/, http://127.0.0.2:9292
`,
);

const glanceSingle = file(
  'glance-api.conf',
  `[DEFAULT]
show_image_direct_url = True
[glance_store]
stores = rbd,http
default_store = rbd
rbd_store_pool = images
rbd_store_user = glance
rbd_store_ceph_conf = ${cephConf}
rbd_store_chunk_size = 4
rbd_thin_provisioning = False
rados_connect_timeout = 3
`,
);

describe('loadConfig', () => {
  it('reads the source from nova.conf [libvirt], the target from glance-api.conf and Glance from [glance]', () => {
    const cfg = loadConfig([nova, glanceSingle]);
    expect(cfg.source).toEqual({ confPath: cephConf, user: 'nova', pool: 'vms', connectTimeoutMs: 10_000 });
    expect(cfg.target).toEqual({
      kind: 'rbd', confPath: cephConf, user: 'glance', pool: 'images', chunkSizeMiB: 4,
      thinProvisioning: false, connectTimeoutMs: 3000,
    });
    expect(cfg.glance).toEqual({ endpoint: 'http://127.0.0.1:9292' });
    expect(cfg.files).toEqual([nova, glanceSingle]);
  });

  it('reads a multi-store glance-api.conf and passes the backend id as the store id', () => {
    const multi = file(
      'glance-multi.conf',
      `[DEFAULT]
enabled_backends = fast:file, ceph:rbd
[glance_store]
default_backend = ceph
[ceph]
rbd_store_pool = images2
rbd_store_user = glance
rbd_store_ceph_conf = ${cephConf}
[fast]
filesystem_store_datadir = ${dir}/images
`,
    );
    const cfg = loadConfig([nova, multi]);
    expect(cfg.target).toMatchObject({ kind: 'rbd', pool: 'images2', user: 'glance', thinProvisioning: true, chunkSizeMiB: 8 });
    expect(cfg.glance).toEqual({ endpoint: 'http://127.0.0.1:9292', storeId: 'ceph' });
  });

  it('reads a file store', () => {
    const f = file('glance-file.conf', `[glance_store]\ndefault_store = file\nfilesystem_store_datadir = ${dir}/data\n`);
    expect(loadConfig([f]).target).toEqual({ kind: 'file', dataDir: `${dir}/data` });
  });

  it('lets later files override earlier ones', () => {
    const override = file('nova-override.conf', '[libvirt]\nrbd_user = nova-ro\n');
    const cfg = loadConfig([nova, override]);
    expect(cfg.source?.user).toBe('nova-ro');
    expect(cfg.source?.pool).toBe('vms');
  });

  const bad: Array<[string, string, RegExp]> = [
    ['missing ceph.conf', '[libvirt]\nimages_rbd_ceph_conf = /nonexistent/ceph.conf\n', /images_rbd_ceph_conf in \[libvirt\] of .*does not exist/],
    ['unsupported store', '[glance_store]\ndefault_store = swift\n', /default_store .* "swift" store/],
    ['bad bool', `[glance_store]\ndefault_store = rbd\nrbd_store_ceph_conf = ${cephConf}\nrbd_thin_provisioning = maybe\n`, /rbd_thin_provisioning .* true or false/],
    ['bad chunk', `[glance_store]\ndefault_store = rbd\nrbd_store_ceph_conf = ${cephConf}\nrbd_store_chunk_size = -1\n`, /rbd_store_chunk_size .* positive number/],
    ['bad backend', '[DEFAULT]\nenabled_backends = ceph\n', /malformed entry "ceph"/],
    ['unknown default backend', '[DEFAULT]\nenabled_backends = a:rbd\n[glance_store]\ndefault_backend = b\n', /default_backend "b"/],
    ['bad api_servers', '[glance]\napi_servers = ftp://x\n', /api_servers .* not an http/],
    ['nothing recognised', '[DEFAULT]\ndebug = true\n', /has none of \[libvirt\]/],
  ];
  for (const [name, text, message] of bad) {
    it(`rejects ${name} with a ConfigError naming the key and file`, () => {
      const f = file(`bad-${name.replace(/\W+/g, '-')}.conf`, text);
      const err = (() => {
        try {
          loadConfig([f]);
        } catch (e) {
          return e;
        }
        throw new Error('no error');
      })();
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).code).toBe('CONFIG_INVALID');
      expect((err as Error).message).toMatch(message);
    });
  }

  it('rejects a missing file and no files at all', () => {
    expect(() => loadConfig([join(dir, 'nope.conf')])).toThrow(/nope.conf does not exist/);
    expect(() => loadConfig([])).toThrow(ConfigError);
  });

  it('never carries secrets from other sections into the result', () => {
    expect(JSON.stringify(loadConfig([nova, glanceSingle]))).not.toContain('secret');
  });
});
