// What snapstore reads from ceph.conf itself (librados reads the rest): where client.<user>'s key is, and
// whether it is well-formed, so a missing keyring or a mangled key is reported as such (CEPH_AUTH, naming
// the file) instead of as librados' bare ENOENT / EINVAL at connect.
import { accessSync, readFileSync, constants as fsConstants } from 'node:fs';
import { iniGet, readIniFile, type IniSections } from '../config/ini.js';
import { CephAuthError, CephConfigError, type KeySource } from './connect-errors.js';

export { CephConfigError } from './connect-errors.js';

/** librados' built-in `keyring` default (src/common/options/global.yaml.in). */
const DEFAULT_KEYRINGS = '/etc/ceph/$cluster.$name.keyring,/etc/ceph/$cluster.keyring,/etc/ceph/keyring,/etc/ceph/keyring.bin';

export function readCephConf(confPath: string): IniSections {
  try {
    return readIniFile(confPath);
  } catch (err) {
    throw new CephConfigError(`cannot use ceph.conf: ${(err as Error).message}`, { confPath, fix: `check the path and permissions of ${confPath}` }, err);
  }
}

function keyringFix(confPath: string, user: string): string {
  return `add "[client.${user}] keyring = /path/to/ceph.client.${user}.keyring" to ${confPath} (the keyring from \`ceph auth get client.${user}\`)`;
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
 * @throws CephAuthError naming the file and the section that pointed at it.
 */
export function findKeyring(conf: IniSections, confPath: string, user: string, explicit?: string): string | null {
  if (explicit !== undefined) {
    if (!readable(explicit)) {
      throw new CephAuthError(`the keyring ${explicit} given for client.${user} (ceph.conf ${confPath}) does not exist or is not readable`, {
        fix: `check the keyring path and its permissions: ls -l ${explicit}`,
        context: { keyring: explicit, user: `client.${user}`, confPath },
      });
    }
    if (!explicit.endsWith('.bin') && !keyringHasEntity(explicit, user)) {
      throw new CephAuthError(`the keyring ${explicit} given for client.${user} (ceph.conf ${confPath}) holds no key for client.${user}`, {
        fix: `write client.${user}'s keyring there: ceph auth get client.${user} -o ${explicit} (as a Ceph admin)`,
        context: { keyring: explicit, user: `client.${user}`, confPath },
      });
    }
    return explicit;
  }
  const auth = cephOption(conf, user, 'auth client required') ?? cephOption(conf, user, 'auth supported');
  if (auth?.value.split(/[\s,;]+/).includes('none')) return null;
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
      throw new CephAuthError(
        `the keyring ${found} (from ${from}) holds no key for client.${user}. Add "[client.${user}] keyring = /path/to/ceph.client.${user}.keyring" to ${confPath} or pass the keyring path explicitly`,
        { fix: keyringFix(confPath, user), context: { confPath, user: `client.${user}`, keyring: found } },
      );
    }
    return found;
  }
  const where = named ? `[${named.section}] keyring in ${confPath} names ${candidates.join(', ')}` : `${confPath} names no keyring for client.${user} and none of librados' defaults exists (${candidates.join(', ')})`;
  throw new CephAuthError(
    `no readable keyring for client.${user}: ${where}. Add "[client.${user}] keyring = /path/to/ceph.client.${user}.keyring" to ${confPath} or pass the keyring path explicitly`,
    { fix: keyringFix(confPath, user), context: { confPath, user: `client.${user}` } },
  );
}

/**
 * Whether `text` is a cephx key as `ceph auth get` prints it: base64 of a CryptoKey (u16 type, 8-byte
 * creation time, u16 length, then the secret; AES secrets are 16 bytes). librados answers a key that does not
 * decode with a bare EINVAL at connect — the same errno as unparsable monitor addresses — and logs the key
 * itself while at it, so snapstore checks it first.
 */
export function isWellFormedKey(text: string): boolean {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text) || text.length % 4 !== 0) return false;
  const bytes = Buffer.from(text, 'base64');
  if (bytes.length < 12) return false;
  const type = bytes.readUInt16LE(0);
  const length = bytes.readUInt16LE(10);
  return (type === 0 || (type === 1 && length === 16)) && bytes.length === 12 + length;
}

function malformed(confPath: string, user: string, where: string, keyring?: string): CephAuthError {
  return new CephAuthError(
    `the key for client.${user} in ${where}${where.includes(confPath) ? '' : ` (ceph.conf ${confPath})`} is malformed: it is not a cephx key as \`ceph auth get\` prints it (a character missing or added when it was pasted?)`,
    {
      fix: `copy client.${user}'s key again from \`ceph -c ${confPath} auth get client.${user}\` (as a Ceph admin) into ${where}`,
      context: { confPath, user: `client.${user}`, ...(keyring ? { keyring } : {}), reason: 'malformed key' },
    },
  );
}

/**
 * Where librados will take client.<user>'s key from (its order: an inline `key`, a `keyfile`, the keyring),
 * after checking that the key there is well-formed. `keyring` is what findKeyring returned.
 * @throws CephAuthError for a malformed key, a keyfile that cannot be read, a keyring entry without a key.
 */
export function keySource(conf: IniSections, confPath: string, user: string, keyring: string | null): KeySource {
  const inline = cephOption(conf, user, 'key');
  if (inline) {
    if (!isWellFormedKey(inline.value)) throw malformed(confPath, user, `the \`key\` option in [${inline.section}] of ${confPath}`);
    return { kind: 'option', section: inline.section };
  }
  const keyfile = cephOption(conf, user, 'keyfile');
  if (keyfile) {
    const path = expandMetavariables(keyfile.value, user);
    let text: string;
    try {
      text = readFileSync(path, 'utf8').trim();
    } catch {
      throw new CephAuthError(`the keyfile ${path} for client.${user} (from [${keyfile.section}] of ${confPath}) does not exist or is not readable`, {
        fix: `check the keyfile path and its permissions: ls -l ${path}`,
        context: { confPath, user: `client.${user}`, keyring: path },
      });
    }
    if (!isWellFormedKey(text)) throw malformed(confPath, user, `the keyfile ${path}`, path);
    return { kind: 'keyfile', path };
  }
  if (keyring === null) return null;
  if (!keyring.endsWith('.bin')) {
    let key: string | undefined;
    try {
      const entry = readIniFile(keyring).get(`client.${user}`);
      key = entry === undefined ? undefined : (entry.get('key') ?? '');
    } catch {
      // Unparsable as text: leave the judgement to librados (EIO at connect).
    }
    if (key !== undefined && !isWellFormedKey(key)) throw malformed(confPath, user, `the keyring ${keyring}`, keyring);
  }
  return { kind: 'keyring', path: keyring };
}
