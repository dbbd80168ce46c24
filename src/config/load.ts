// Builds a SnapstoreConfig from operators' real files, merged in the order given: nova.conf `[libvirt]`
// describes the source cluster, glance-api.conf `[glance_store]` (or multi-store `enabled_backends`) the
// target store, nova.conf `[glance]` the image API. Unknown keys are ignored; a key that is needed but
// missing or wrong is a ConfigError naming the key and the file.
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError, iniGet, parseBool, parsePositiveNumber, readIniFile, type IniSections } from './ini.js';
import { readOpenStackAuth } from './keystoneauth.js';
import type { GlanceConfig, OpenStackFileAuth, RbdSourceConfig, SnapstoreConfig, TargetConfig } from './types.js';

const DEFAULT_CEPH_CONF = '/etc/ceph/ceph.conf';
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

interface Origin {
  file: string;
  section: string;
  key: string;
}

/** A value together with where it came from, so a later error can name the file and key. */
interface Sourced<T> {
  value: T;
  origin: Origin | null;
}

interface SourceDraft {
  confPath: Sourced<string>;
  user: string;
  pool: string;
  connectTimeoutMs: number;
}

type TargetDraft =
  | { kind: 'rbd'; confPath: Sourced<string>; user: string; pool: string; chunkSizeMiB: number; thinProvisioning: boolean; connectTimeoutMs: number }
  | { kind: 'file'; dataDir: Sourced<string> };

function get(sections: IniSections, file: string, section: string, key: string): { value: string; origin: Origin } | undefined {
  const value = iniGet(sections, section, key);
  return value === undefined ? undefined : { value, origin: { file, section, key } };
}

function readNova(sections: IniSections, file: string, prev: SourceDraft | undefined): SourceDraft {
  const s = 'libvirt';
  const conf = get(sections, file, s, 'images_rbd_ceph_conf');
  const timeout = get(sections, file, s, 'rbd_connect_timeout');
  return {
    confPath: conf ?? prev?.confPath ?? { value: DEFAULT_CEPH_CONF, origin: null },
    user: iniGet(sections, s, 'rbd_user') ?? prev?.user ?? 'admin',
    pool: iniGet(sections, s, 'images_rbd_pool') ?? prev?.pool ?? 'rbd',
    connectTimeoutMs: timeout
      ? parsePositiveNumber(timeout.value, timeout.origin) * 1000
      : prev?.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
  };
}

function readGlanceStore(sections: IniSections, file: string): { draft: TargetDraft; storeId?: string } {
  let section = 'glance_store';
  let type = iniGet(sections, 'glance_store', 'default_store') ?? 'file';
  let storeId: string | undefined;
  const enabled = iniGet(sections, 'DEFAULT', 'enabled_backends');
  if (enabled) {
    // Multi-store: `enabled_backends = ceph:rbd, fast:file`; options live in a section named by the id.
    const backends = new Map<string, string>();
    for (const entry of enabled.split(',').map((e) => e.trim()).filter(Boolean)) {
      const [id, kind] = entry.split(':').map((p) => p.trim());
      if (!id || !kind) {
        throw new ConfigError(`enabled_backends in [DEFAULT] of ${file} has a malformed entry "${entry}" (want id:type)`, {
          file, section: 'DEFAULT', key: 'enabled_backends',
        });
      }
      backends.set(id, kind);
    }
    const chosen = iniGet(sections, 'glance_store', 'default_backend') ?? [...backends.keys()][0] ?? '';
    const kind = backends.get(chosen);
    if (!kind) {
      throw new ConfigError(`default_backend "${chosen}" in [glance_store] of ${file} is not in enabled_backends`, {
        file, section: 'glance_store', key: 'default_backend',
      });
    }
    section = chosen;
    type = kind;
    storeId = chosen;
  }
  const where = (key: string): Origin => ({ file, section, key });
  if (type === 'rbd') {
    const chunk = iniGet(sections, section, 'rbd_store_chunk_size');
    const thin = iniGet(sections, section, 'rbd_thin_provisioning');
    const timeout = iniGet(sections, section, 'rados_connect_timeout');
    const timeoutS = timeout ? Number(timeout) : 0;
    if (timeout && (!Number.isFinite(timeoutS) || timeoutS < 0)) {
      throw new ConfigError(`rados_connect_timeout in [${section}] of ${file} must be a number of seconds, not "${timeout}"`, where('rados_connect_timeout'));
    }
    return {
      storeId,
      draft: {
        kind: 'rbd',
        confPath: get(sections, file, section, 'rbd_store_ceph_conf') ?? { value: DEFAULT_CEPH_CONF, origin: null },
        user: iniGet(sections, section, 'rbd_store_user') ?? 'admin',
        pool: iniGet(sections, section, 'rbd_store_pool') ?? 'images',
        chunkSizeMiB: chunk ? parsePositiveNumber(chunk, where('rbd_store_chunk_size')) : 8,
        // glance_store defaults this to False; snapstore writes thin unless the operator says otherwise.
        thinProvisioning: thin ? parseBool(thin, where('rbd_thin_provisioning')) : true,
        connectTimeoutMs: timeoutS > 0 ? timeoutS * 1000 : DEFAULT_CONNECT_TIMEOUT_MS,
      },
    };
  }
  if (type === 'file') {
    return {
      storeId,
      draft: {
        kind: 'file',
        dataDir: get(sections, file, section, 'filesystem_store_datadir') ?? { value: '/var/lib/glance/images/', origin: null },
      },
    };
  }
  const key = enabled ? 'enabled_backends' : 'default_store';
  throw new ConfigError(`${key} in ${file} selects a "${type}" store; snapstore supports rbd and file`, {
    file, section: enabled ? 'DEFAULT' : 'glance_store', key,
  });
}

function describe(origin: Origin | null, fallbackKey: string): string {
  return origin ? `${origin.key} in [${origin.section}] of ${origin.file}` : `${fallbackKey} (not set; default)`;
}

function requireCephConf(path: Sourced<string>, key: string): string {
  const abs = resolve(path.value);
  if (!existsSync(abs) || !statSync(abs).isFile()) {
    throw new ConfigError(`ceph.conf ${abs} named by ${describe(path.origin, key)} does not exist`, {
      file: path.origin?.file, section: path.origin?.section, key,
    });
  }
  return abs;
}

/** Reads and merges the given files (later ones override earlier ones). */
export function loadConfig(files: string[]): SnapstoreConfig {
  if (files.length === 0) throw new ConfigError('no config file given (use --config nova.conf --config glance-api.conf)');
  let source: SourceDraft | undefined;
  let target: TargetDraft | undefined;
  let glance: GlanceConfig | undefined;
  let storeId: string | undefined;
  let openstack: OpenStackFileAuth | undefined;
  const used: string[] = [];
  for (const f of files) {
    const file = resolve(f);
    const sections = readIniFile(file);
    let recognised = false;
    if (sections.has('libvirt')) {
      source = readNova(sections, file, source);
      recognised = true;
    }
    if (sections.has('glance_store') || iniGet(sections, 'DEFAULT', 'enabled_backends')) {
      ({ draft: target, storeId } = readGlanceStore(sections, file));
      recognised = true;
    }
    const api = iniGet(sections, 'glance', 'endpoint_override') ?? iniGet(sections, 'glance', 'api_servers');
    if (api) {
      const endpoint = (api.split(',', 1)[0] ?? api).trim();
      if (!/^https?:\/\/[^\s/@]+(\/[^\s@]*)?$/.test(endpoint)) {
        throw new ConfigError(`api_servers in [glance] of ${file} is not an http(s) URL: "${endpoint}"`, {
          file, section: 'glance', key: 'api_servers',
        });
      }
      glance = { endpoint: endpoint.replace(/\/+$/, '') };
      recognised = true;
    }
    const auth = readOpenStackAuth(sections, file, openstack);
    if (auth !== openstack) {
      openstack = auth;
      recognised = true;
    }
    if (!recognised) {
      throw new ConfigError(
        `${file} has none of [libvirt] (nova.conf), [glance_store] (glance-api.conf), [glance] api_servers or keystoneauth options`,
        { file },
      );
    }
    used.push(file);
  }
  const config: SnapstoreConfig = { files: used };
  if (source) {
    const src: RbdSourceConfig = {
      confPath: requireCephConf(source.confPath, 'images_rbd_ceph_conf'),
      user: source.user,
      pool: source.pool,
      connectTimeoutMs: source.connectTimeoutMs,
    };
    config.source = src;
  }
  if (target) {
    let t: TargetConfig;
    if (target.kind === 'rbd') {
      const { confPath, ...rest } = target;
      t = { ...rest, confPath: requireCephConf(confPath, 'rbd_store_ceph_conf') };
    } else {
      t = { kind: 'file', dataDir: resolve(target.dataDir.value) };
    }
    config.target = t;
  }
  if (glance) {
    if (storeId) glance.storeId = storeId;
    config.glance = glance;
  }
  if (openstack) config.openstack = openstack;
  if (storeId && !glance) config.glanceStoreId = storeId;
  return config;
}
