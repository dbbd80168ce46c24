// Where Glance's credentials come from, in a fixed order; the first source that gives any wins and is
// named in `check` and in every error:
//   1. the library's own option (a token provider, or keystoneauth options);
//   2. OS_CLOUD + clouds.yaml (openstacksdk's search paths, secure.yaml merged);
//   3. the OS_* environment (password, v3 application credential, token; OS_AUTH_TOKEN alone is a fixed
//      token for a configured endpoint, as before);
//   4. nova.conf [glance] keystoneauth options.
import type { OpenStackFileAuth } from '../config/types.js';
import { loadCloud } from './clouds.js';
import type { EndpointFilter, FoundCredentials, KeystoneAuthOptions, TokenProvider } from './types.js';

export interface CredentialSearch {
  /** The library's own option: wins over every other source. */
  auth?: KeystoneAuthOptions | TokenProvider;
  env?: NodeJS.ProcessEnv;
  /** nova.conf's keystoneauth sections (SnapstoreConfig.openstack). */
  files?: OpenStackFileAuth;
  cwd?: string;
  home?: string;
}

const ENV_KEYS: Array<[keyof KeystoneAuthOptions, string[]]> = [
  ['authUrl', ['OS_AUTH_URL']],
  ['authType', ['OS_AUTH_TYPE']],
  ['username', ['OS_USERNAME']],
  ['userId', ['OS_USER_ID']],
  ['password', ['OS_PASSWORD']],
  ['userDomainName', ['OS_USER_DOMAIN_NAME']],
  ['userDomainId', ['OS_USER_DOMAIN_ID']],
  ['projectName', ['OS_PROJECT_NAME', 'OS_TENANT_NAME']],
  ['projectId', ['OS_PROJECT_ID', 'OS_TENANT_ID']],
  ['projectDomainName', ['OS_PROJECT_DOMAIN_NAME']],
  ['projectDomainId', ['OS_PROJECT_DOMAIN_ID']],
  ['defaultDomainName', ['OS_DEFAULT_DOMAIN_NAME', 'OS_DEFAULT_DOMAIN']],
  ['defaultDomainId', ['OS_DEFAULT_DOMAIN_ID']],
  ['applicationCredentialId', ['OS_APPLICATION_CREDENTIAL_ID']],
  ['applicationCredentialName', ['OS_APPLICATION_CREDENTIAL_NAME']],
  ['applicationCredentialSecret', ['OS_APPLICATION_CREDENTIAL_SECRET']],
  ['token', ['OS_AUTH_TOKEN', 'OS_TOKEN']],
  ['regionName', ['OS_REGION_NAME']],
  ['serviceType', ['OS_IMAGE_SERVICE_TYPE']],
];

export function envOptions(env: NodeJS.ProcessEnv): KeystoneAuthOptions {
  const o: KeystoneAuthOptions = {};
  for (const [field, names] of ENV_KEYS) {
    const value = names.map((n) => env[n]).find((v) => v !== undefined && v !== '');
    if (value !== undefined) (o as Record<string, string>)[field] = value;
  }
  const iface = env.OS_INTERFACE ?? env.OS_ENDPOINT_TYPE;
  if (iface) o.interfaces = [iface];
  return o;
}

/** Glance's catalog entry: the source's own service type, interfaces and region, else the defaults. */
export function filterOf(o: KeystoneAuthOptions, defaultInterfaces: string[]): EndpointFilter {
  return {
    serviceType: o.serviceType ?? 'image',
    interfaces: o.interfaces?.length ? o.interfaces : defaultInterfaces,
    ...(o.regionName ? { region: o.regionName } : {}),
  };
}

function isProvider(auth: KeystoneAuthOptions | TokenProvider): auth is TokenProvider {
  return typeof (auth as TokenProvider).token === 'function';
}

/** The first source that gives credentials, or null when none does. */
export function resolveCredentials(search: CredentialSearch): FoundCredentials | null {
  const env = search.env ?? process.env;
  // openstackclient's default interface is public; nova's [glance] valid_interfaces default is internal, public.
  const cli = ['public'];
  if (search.auth) {
    const source = 'the library option (auth)';
    if (isProvider(search.auth)) return { kind: 'provider', source, provider: search.auth, filter: filterOf({}, cli) };
    return { kind: 'keystone', source, options: search.auth, filter: filterOf(search.auth, cli) };
  }
  if (env.OS_CLOUD) {
    const { options, source } = loadCloud(env.OS_CLOUD, { env, ...(search.cwd ? { cwd: search.cwd } : {}), ...(search.home ? { home: search.home } : {}) });
    // As openstackclient: OS_* variables set beside OS_CLOUD fill in (or override) the cloud's values.
    const merged = { ...options, ...envOptions(env) };
    return { kind: 'keystone', source, options: merged, filter: filterOf(merged, cli) };
  }
  const fromEnv = envOptions(env);
  if (fromEnv.authUrl && (fromEnv.username || fromEnv.userId || fromEnv.applicationCredentialId || fromEnv.applicationCredentialName || fromEnv.token)) {
    return { kind: 'keystone', source: 'the OS_* environment variables', options: fromEnv, filter: filterOf(fromEnv, cli) };
  }
  if (fromEnv.token) {
    return { kind: 'static', source: 'the OS_AUTH_TOKEN environment variable', token: fromEnv.token, filter: filterOf(fromEnv, cli) };
  }
  const nova = search.files?.glance;
  if (nova) {
    return { kind: 'keystone', source: `[glance] of ${nova.file}`, options: nova.options, filter: filterOf(nova.options, ['internal', 'public']) };
  }
  return null;
}
