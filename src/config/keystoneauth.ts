// keystoneauth's options as nova.conf writes them in `[glance]` and `[service_user]` (keystoneauth1
// loading: the auth plugin's options plus the adapter's `valid_interfaces`, `region_name`, `service_type`).
import { iniGet, parseBool, type IniSections } from './ini.js';
import type { KeystoneAuthOptions, OpenStackFileAuth } from './types.js';

const KEYS: Array<[keyof KeystoneAuthOptions, string]> = [
  ['authType', 'auth_type'],
  ['authUrl', 'auth_url'],
  ['username', 'username'],
  ['userId', 'user_id'],
  ['password', 'password'],
  ['userDomainName', 'user_domain_name'],
  ['userDomainId', 'user_domain_id'],
  ['projectName', 'project_name'],
  ['projectId', 'project_id'],
  ['projectDomainName', 'project_domain_name'],
  ['projectDomainId', 'project_domain_id'],
  ['defaultDomainName', 'default_domain_name'],
  ['defaultDomainId', 'default_domain_id'],
  ['applicationCredentialId', 'application_credential_id'],
  ['applicationCredentialName', 'application_credential_name'],
  ['applicationCredentialSecret', 'application_credential_secret'],
  ['token', 'token'],
  ['regionName', 'region_name'],
  ['serviceType', 'service_type'],
];

/** The keystoneauth options of one section, or undefined when it names no auth_type and no auth_url. */
export function readAuthSection(sections: IniSections, section: string): KeystoneAuthOptions | undefined {
  if (!iniGet(sections, section, 'auth_type') && !iniGet(sections, section, 'auth_url')) return undefined;
  const options: KeystoneAuthOptions = {};
  for (const [field, key] of KEYS) {
    const value = iniGet(sections, section, key);
    if (value !== undefined) (options as Record<string, string>)[field] = value;
  }
  const interfaces = iniGet(sections, section, 'valid_interfaces');
  if (interfaces) options.interfaces = interfaces.split(',').map((i) => i.trim()).filter(Boolean);
  return options;
}

/** nova.conf's `[glance]` and `[service_user]` credentials merged over what earlier files gave. */
export function readOpenStackAuth(
  sections: IniSections,
  file: string,
  prev: OpenStackFileAuth | undefined,
): OpenStackFileAuth | undefined {
  const glance = readAuthSection(sections, 'glance');
  const service = readAuthSection(sections, 'service_user');
  const sendRaw = iniGet(sections, 'service_user', 'send_service_user_token');
  if (!glance && !service && sendRaw === undefined) return prev;
  const next: OpenStackFileAuth = { ...prev };
  if (glance) next.glance = { options: glance, file };
  if (service || sendRaw !== undefined) {
    const send = sendRaw === undefined ? false : parseBool(sendRaw, { file, section: 'service_user', key: 'send_service_user_token' });
    const options = service ?? next.serviceUser?.options ?? {};
    next.serviceUser = { options, file, send };
  }
  return next;
}
