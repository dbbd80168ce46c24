// Reading oslo.config and ceph.conf style INI files with the `ini` package, normalised so lookups do not
// depend on how an operator spelled a key (`rbd default features` = `rbd_default_features`) or on `ini`
// splitting dotted section names (`[client.glance]`) into nested objects.
import { readFileSync } from 'node:fs';
import ini from 'ini';
import { SnapstoreError } from '../errors.js';

export type IniSections = Map<string, Map<string, string>>;

export class ConfigError extends SnapstoreError {
  constructor(message: string, context: { file?: string; section?: string; key?: string } = {}, cause?: unknown) {
    super('CONFIG_INVALID', message, { context, cause });
  }
}

export function normalizeKey(key: string): string {
  return key.trim().toLowerCase().replace(/[\s-]+/g, '_');
}

function flatten(into: IniSections, path: string, value: Record<string, unknown>): void {
  for (const [key, v] of Object.entries(value)) {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      flatten(into, path ? `${path}.${key}` : key, v as Record<string, unknown>);
      continue;
    }
    if (!path) continue;
    let section = into.get(path);
    if (!section) {
      section = new Map();
      into.set(path, section);
    }
    section.set(normalizeKey(key), Array.isArray(v) ? v.join(',') : String(v ?? '').trim());
  }
}

export function parseIni(text: string): IniSections {
  const sections: IniSections = new Map();
  flatten(sections, '', ini.parse(text) as Record<string, unknown>);
  return sections;
}

export function readIniFile(file: string): IniSections {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'is not readable' : `cannot be read (${code})`;
    throw new ConfigError(`config file ${file} ${why}`, { file }, err);
  }
  return parseIni(text);
}

/** A value from a section, with oslo's [DEFAULT] fallback when asked. Empty strings count as unset. */
export function iniGet(sections: IniSections, section: string, key: string, withDefault = false): string | undefined {
  const v = sections.get(section)?.get(normalizeKey(key));
  if (v !== undefined && v !== '') return v;
  if (withDefault && section !== 'DEFAULT') return iniGet(sections, 'DEFAULT', key);
  return undefined;
}

export function parseBool(value: string, where: { file: string; section: string; key: string }): boolean {
  const v = value.toLowerCase();
  if (['true', 'yes', 'on', '1'].includes(v)) return true;
  if (['false', 'no', 'off', '0'].includes(v)) return false;
  throw new ConfigError(`${where.key} in [${where.section}] of ${where.file} must be true or false, not "${value}"`, where);
}

export function parsePositiveNumber(value: string, where: { file: string; section: string; key: string }): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) {
    throw new ConfigError(`${where.key} in [${where.section}] of ${where.file} must be a positive number, not "${value}"`, where);
  }
  return n;
}
