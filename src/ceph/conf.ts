// What snapstore reads from ceph.conf itself (librados reads the rest): where client.<user>'s key is, so a
// missing or unreadable keyring is reported as such instead of as librados' bare ENOENT at connect.
import { accessSync, constants as fsConstants } from 'node:fs';
import { iniGet, readIniFile, type IniSections } from '../config/ini.js';
import { SnapstoreError } from '../errors.js';

/** ceph.conf is missing or unreadable, or names no usable key for the user. */
export class CephConfigError extends SnapstoreError {
  constructor(message: string, context: Record<string, string> = {}, cause?: unknown) {
    super('CEPH_CONFIG', message, { context, cause });
  }
}

/** librados' built-in `keyring` default (src/common/options/global.yaml.in). */
const DEFAULT_KEYRINGS = '/etc/ceph/$cluster.$name.keyring,/etc/ceph/$cluster.keyring,/etc/ceph/keyring,/etc/ceph/keyring.bin';

export function readCephConf(confPath: string): IniSections {
  try {
    return readIniFile(confPath);
  } catch (err) {
    throw new CephConfigError(`cannot use ceph.conf: ${(err as Error).message}`, { confPath }, err);
  }
}

/** A ceph.conf option as librados resolves it for `client.<user>`: [client.<user>], then [client], then [global]. */
export function cephOption(conf: IniSections, user: string, key: string): { value: string; section: string } | undefined {
  for (const section of [`client.${user}`, 'client', 'global']) {
    const value = iniGet(conf, section, key);
    if (value !== undefined) return { value, section };
  }
  return undefined;
}

function expandMetavariables(path: string, user: string): string {
  return path
    .replace(/\$cluster|\$\{cluster\}/g, 'ceph')
    .replace(/\$name|\$\{name\}/g, `client.${user}`)
    .replace(/\$id|\$\{id\}/g, user)
    .replace(/\$type|\$\{type\}/g, 'client');
}

function keyringHasEntity(path: string, user: string): boolean {
  try {
    return readIniFile(path).has(`client.${user}`);
  } catch {
    // Unparsable as text: leave the judgement to librados.
    return true;
  }
}

function readable(path: string): boolean {
  try {
    accessSync(path, fsConstants.R_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Finds the keyring librados will use for `client.<user>` and checks it can be read. Returns its path, or
 * null when no keyring is needed (cephx off, or the key is given inline with `key`/`keyfile`).
 * @throws CephConfigError naming the file and the section that pointed at it.
 */
export function findKeyring(conf: IniSections, confPath: string, user: string, explicit?: string): string | null {
  if (explicit !== undefined) {
    if (!readable(explicit)) {
      throw new CephConfigError(`the keyring ${explicit} given for client.${user} does not exist or is not readable`, {
        keyring: explicit,
        user,
      });
    }
    if (!explicit.endsWith('.bin') && !keyringHasEntity(explicit, user)) {
      throw new CephConfigError(`the keyring ${explicit} given for client.${user} holds no key for client.${user}`, {
        keyring: explicit,
        user,
      });
    }
    return explicit;
  }
  const auth = cephOption(conf, user, 'auth client required') ?? cephOption(conf, user, 'auth supported');
  if (auth && auth.value.split(/[\s,;]+/).includes('none')) return null;
  if (cephOption(conf, user, 'key') || cephOption(conf, user, 'keyfile')) return null;
  const named = cephOption(conf, user, 'keyring');
  const candidates = (named?.value ?? DEFAULT_KEYRINGS)
    .split(/[\s,;]+/)
    .filter(Boolean)
    .map((p) => expandMetavariables(p, user));
  const found = candidates.find(readable);
  if (found) {
    // librados uses the first keyring that exists; a text keyring without the user's entry fails auth later
    // with a bare ENOENT (typically [global] keyring pointing at admin's keyring).
    if (!found.endsWith('.bin') && !keyringHasEntity(found, user)) {
      const from = named ? `[${named.section}] keyring in ${confPath}` : "librados' default keyring search";
      throw new CephConfigError(
        `the keyring ${found} (from ${from}) holds no key for client.${user}. Add "[client.${user}] keyring = /path/to/ceph.client.${user}.keyring" to ${confPath} or pass the keyring path explicitly`,
        { confPath, user, keyring: found },
      );
    }
    return found;
  }
  const where = named ? `[${named.section}] keyring in ${confPath} names ${candidates.join(', ')}` : `${confPath} names no keyring for client.${user} and none of librados' defaults exists (${candidates.join(', ')})`;
  throw new CephConfigError(
    `no readable keyring for client.${user}: ${where}. Add "[client.${user}] keyring = /path/to/ceph.client.${user}.keyring" to ${confPath} or pass the keyring path explicitly`,
    { confPath, user },
  );
}
