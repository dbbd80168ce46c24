// clouds.yaml as openstacksdk reads it (openstack/config/loader.py): the first file found among
// $OS_CLIENT_CONFIG_FILE, ./, the user's config dir ($XDG_CONFIG_HOME or ~/.config)/openstack and
// /etc/openstack, each as clouds.yaml, clouds.yml or clouds.json; secure.yaml (same places,
// $OS_CLIENT_SECURE_FILE first) merged over it, key by key.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { SnapstoreError } from '../errors.js';
import type { KeystoneAuthOptions } from './types.js';

const SUFFIXES = ['.yaml', '.yml', '.json'];

export interface CloudsPaths {
  env: NodeJS.ProcessEnv;
  cwd?: string;
  home?: string;
}

/** Every place looked at, in order, for `clouds` (or `secure`). */
export function searchPaths(base: 'clouds' | 'secure', paths: CloudsPaths): string[] {
  const { env } = paths;
  const home = paths.home ?? env.HOME ?? homedir();
  const dirs = [
    paths.cwd ?? process.cwd(),
    join(env.XDG_CONFIG_HOME || join(home, '.config'), 'openstack'),
    join(home, '.config', 'openstack'),
    '/etc/openstack',
  ];
  const override = base === 'clouds' ? env.OS_CLIENT_CONFIG_FILE : env.OS_CLIENT_SECURE_FILE;
  const all = [...(override ? [resolve(override)] : []), ...dirs.flatMap((d) => SUFFIXES.map((s) => join(d, base + s)))];
  return [...new Set(all)];
}

function readYaml(file: string): Record<string, unknown> {
  try {
    const value: unknown = parse(readFileSync(file, 'utf8'));
    return value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : {};
  } catch (err) {
    // The parser's message may quote the line it failed on, which may hold a password: name the file only.
    throw new SnapstoreError('CONFIG_INVALID', `${file} is not readable YAML or JSON`, { context: { file }, cause: codeOnly(err) });
  }
}

function codeOnly(err: unknown): Error {
  const e = new Error(err instanceof Error ? err.name : 'error');
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') Object.assign(e, { code });
  return e;
}

function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    const both = v && b && typeof v === 'object' && typeof b === 'object' && !Array.isArray(v) && !Array.isArray(b);
    out[k] = both ? merge(b as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out;
}

const AUTH_KEYS: Record<string, keyof KeystoneAuthOptions> = {
  auth_url: 'authUrl',
  username: 'username',
  user_id: 'userId',
  password: 'password',
  user_domain_name: 'userDomainName',
  user_domain_id: 'userDomainId',
  project_name: 'projectName',
  tenant_name: 'projectName',
  project_id: 'projectId',
  tenant_id: 'projectId',
  project_domain_name: 'projectDomainName',
  project_domain_id: 'projectDomainId',
  domain_name: 'defaultDomainName',
  default_domain_name: 'defaultDomainName',
  domain_id: 'defaultDomainId',
  default_domain_id: 'defaultDomainId',
  application_credential_id: 'applicationCredentialId',
  application_credential_name: 'applicationCredentialName',
  application_credential_secret: 'applicationCredentialSecret',
  token: 'token',
};

/** A cloud's entry as keystoneauth options. */
export function cloudOptions(cloud: Record<string, unknown>): KeystoneAuthOptions {
  const o: KeystoneAuthOptions = {};
  const auth = (cloud.auth ?? {}) as Record<string, unknown>;
  for (const [key, field] of Object.entries(AUTH_KEYS)) {
    const v = auth[key];
    if (typeof v === 'string' || typeof v === 'number') (o as Record<string, string>)[field] = String(v);
  }
  if (typeof cloud.auth_type === 'string') o.authType = cloud.auth_type;
  if (typeof cloud.region_name === 'string') o.regionName = cloud.region_name;
  if (typeof cloud.interface === 'string') o.interfaces = [cloud.interface];
  if (typeof cloud.image_service_type === 'string') o.serviceType = cloud.image_service_type;
  return o;
}

/** The cloud named `name` from the first clouds file found, secure file merged; `source` names both. */
export function loadCloud(name: string, paths: CloudsPaths): { options: KeystoneAuthOptions; source: string } {
  const looked = searchPaths('clouds', paths);
  const file = looked.find((f) => existsSync(f));
  if (!file) {
    throw new SnapstoreError('KEYSTONE_NO_CREDENTIALS', `OS_CLOUD is "${name}" but there is no clouds.yaml (looked at ${looked.join(', ')})`);
  }
  const secure = searchPaths('secure', paths).find((f) => existsSync(f));
  let clouds = (readYaml(file).clouds ?? {}) as Record<string, unknown>;
  if (secure) clouds = merge(clouds, (readYaml(secure).clouds ?? {}) as Record<string, unknown>);
  const cloud = clouds[name];
  if (!cloud || typeof cloud !== 'object') {
    const known = Object.keys(clouds).join(', ') || 'none';
    throw new SnapstoreError('KEYSTONE_NO_CREDENTIALS', `OS_CLOUD is "${name}" but ${file}${secure ? ` (with ${secure})` : ''} has no such cloud (clouds: ${known})`);
  }
  const source = `clouds.yaml cloud "${name}" (${file}${secure ? ` + ${secure}` : ''})`;
  return { options: cloudOptions(cloud as Record<string, unknown>), source };
}
