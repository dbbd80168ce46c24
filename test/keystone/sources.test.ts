// Where credentials are found, without a Keystone: the fixed order of the sources (first found wins, and is
// named), openstacksdk's clouds.yaml search paths with secure.yaml merged, the OS_* variables, nova.conf's
// keystoneauth options read by loadConfig, and the catalog lookup by type, interface and region.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { hasCode } from '../../src/errors.js';
import { endpointFrom, OpenStackAuth, resolveCredentials, searchPaths, type CatalogService } from '../../src/keystone/index.js';

const dir = mkdtempSync(join(tmpdir(), 'snapstore-sources-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function write(path: string, text: string): string {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, text);
  return path;
}

const cloud = (name: string, url: string) =>
  `clouds:\n  ${name}:\n    auth:\n      auth_url: ${url}\n      username: u-${name}\n      project_name: p\n    region_name: R2\n    interface: internal\n`;

describe('credential sources', () => {
  it('looks for clouds.yaml as openstacksdk does: OS_CLIENT_CONFIG_FILE, ./, the user config dir, /etc/openstack', () => {
    const home = join(dir, 'home-a');
    const env = { OS_CLIENT_CONFIG_FILE: '/x/my.yaml', XDG_CONFIG_HOME: join(home, 'xdg') };
    const paths = searchPaths('clouds', { env, cwd: '/cwd', home });
    expect(paths.slice(0, 4)).toEqual(['/x/my.yaml', '/cwd/clouds.yaml', '/cwd/clouds.yml', '/cwd/clouds.json']);
    expect(paths).toContain(join(home, 'xdg', 'openstack', 'clouds.yaml'));
    expect(paths.indexOf(join(home, '.config', 'openstack', 'clouds.yaml'))).toBeGreaterThan(paths.indexOf(join(home, 'xdg', 'openstack', 'clouds.yaml')));
    expect(paths.at(-3)).toBe('/etc/openstack/clouds.yaml');
    expect(searchPaths('secure', { env: {}, cwd: '/cwd', home })[0]).toBe('/cwd/secure.yaml');
  });

  it('takes the first clouds.yaml found, merges secure.yaml over it and names both', () => {
    const home = join(dir, 'home-b');
    const cwd = join(dir, 'cwd-b');
    const user = write(join(home, '.config', 'openstack', 'clouds.yaml'), cloud('prod', 'http://user-file'));
    write(join(cwd, 'clouds.yaml'), cloud('other', 'http://cwd-file'));
    // ./clouds.yaml comes first and has no "prod": the first file found is the one used (as openstacksdk).
    expect(() => resolveCredentials({ env: { OS_CLOUD: 'prod' }, cwd, home })).toThrow(/has no such cloud \(clouds: other\)/);
    const secure = write(join(home, '.config', 'openstack', 'secure.yaml'), 'clouds:\n  prod:\n    auth:\n      password: s3cret-from-secure\n');
    const found = resolveCredentials({ env: { OS_CLOUD: 'prod' }, cwd: join(dir, 'empty'), home });
    expect(found).toMatchObject({
      kind: 'keystone',
      source: `clouds.yaml cloud "prod" (${user} + ${secure})`,
      options: { authUrl: 'http://user-file', username: 'u-prod', password: 's3cret-from-secure', projectName: 'p' },
      filter: { serviceType: 'image', interfaces: ['internal'], region: 'R2' },
    });
  });

  it('fails OS_CLOUD without any clouds.yaml as KEYSTONE_NO_CREDENTIALS, listing where it looked', () => {
    const err = (() => {
      try {
        return resolveCredentials({ env: { OS_CLOUD: 'nope' }, cwd: join(dir, 'empty'), home: join(dir, 'nohome') });
      } catch (e) {
        return e;
      }
    })();
    expect(hasCode(err, 'KEYSTONE_NO_CREDENTIALS')).toBe(true);
    expect(String((err as Error).message)).toContain(join(dir, 'nohome', '.config', 'openstack', 'clouds.yaml'));
  });

  it('goes library option, OS_CLOUD, OS_* (password, application credential, then a bare token), nova.conf [glance]', () => {
    const nova = write(join(dir, 'nova.conf'), '[glance]\nauth_type = password\nauth_url = http://nova-ks\nusername = nova-user\npassword = pw\nvalid_interfaces = internal, public\nregion_name = R1\n');
    const files = loadConfig([nova]).openstack;
    expect(files?.glance?.options).toMatchObject({ authType: 'password', authUrl: 'http://nova-ks', username: 'nova-user', interfaces: ['internal', 'public'], regionName: 'R1' });
    const home = join(dir, 'home-c');
    write(join(home, '.config', 'openstack', 'clouds.yaml'), cloud('c', 'http://cloud'));
    const cwd = join(dir, 'empty');
    const osPassword = { OS_AUTH_URL: 'http://env', OS_USERNAME: 'e', OS_PASSWORD: 'x' };
    const appCred = { OS_AUTH_URL: 'http://env', OS_APPLICATION_CREDENTIAL_ID: 'id', OS_APPLICATION_CREDENTIAL_SECRET: 's' };
    const source = (env: Record<string, string>, auth?: { authUrl: string }) =>
      resolveCredentials({ env, files, cwd, home, ...(auth ? { auth } : {}) })?.source;
    expect(source({ OS_CLOUD: 'c', ...osPassword }, { authUrl: 'http://lib' })).toBe('the library option (auth)');
    expect(source({ OS_CLOUD: 'c', ...osPassword })).toMatch(/^clouds\.yaml cloud "c"/);
    expect(source(osPassword)).toBe('the OS_* environment variables');
    expect(source(appCred)).toBe('the OS_* environment variables');
    expect(source({ OS_AUTH_TOKEN: 'tok' })).toBe('the OS_AUTH_TOKEN environment variable');
    expect(source({})).toBe(`[glance] of ${nova}`);
    expect(resolveCredentials({ env: {}, cwd, home })).toBeNull();
    // nova's interfaces default to internal, public; openstackclient's to public.
    expect(resolveCredentials({ env: {}, files: { glance: { file: nova, options: { authUrl: 'http://n' } } } })?.filter.interfaces).toEqual(['internal', 'public']);
    expect(resolveCredentials({ env: osPassword })?.filter.interfaces).toEqual(['public']);
  });

  it('asks for a service user when [service_user] send_service_user_token is on and none is configured', () => {
    const nova = write(join(dir, 'nova-svc.conf'), '[glance]\nauth_url = http://ks\nusername = u\npassword = p\n[service_user]\nsend_service_user_token = True\n');
    const files = loadConfig([nova]).openstack;
    expect(files?.serviceUser).toEqual({ options: {}, file: nova, send: true });
    let err: unknown;
    try {
      OpenStackAuth.resolve({ env: {}, ...(files ? { files } : {}) });
    } catch (e) {
      err = e;
    }
    expect(hasCode(err, 'KEYSTONE_NO_CREDENTIALS')).toBe(true);
    expect(String((err as Error).message)).toContain(`send_service_user_token in [service_user] of ${nova}`);
  });
});

describe('the catalog', () => {
  const catalog: CatalogService[] = [
    { type: 'identity', endpoints: [{ interface: 'public', region: 'R1', url: 'http://ks' }] },
    // Keystone lists a service whose endpoints are all disabled with none.
    { type: 'volumev3', endpoints: [] },
    {
      type: 'image',
      endpoints: [
        { interface: 'public', region: 'R1', url: 'http://pub-r1/' },
        { interface: 'internal', region: 'R1', url: 'http://int-r1' },
        { interface: 'public', region: 'R2', url: 'http://pub-r2' },
      ],
    },
  ];

  it('picks the first valid interface with an endpoint, in the region when one is set', () => {
    expect(endpointFrom(catalog, { serviceType: 'image', interfaces: ['internal', 'public'] }, 's')).toBe('http://int-r1');
    expect(endpointFrom(catalog, { serviceType: 'image', interfaces: ['admin', 'publicURL'], region: 'R1' }, 's')).toBe('http://pub-r1');
    expect(endpointFrom(catalog, { serviceType: 'image', interfaces: ['internal', 'public'], region: 'R2' }, 's')).toBe('http://pub-r2');
  });

  it('names what is missing as KEYSTONE_NO_ENDPOINT', () => {
    const missing = (f: Parameters<typeof endpointFrom>[1]) => {
      try {
        endpointFrom(catalog, f, 'the OS_* environment variables');
      } catch (e) {
        return e as Error;
      }
      return null;
    };
    const noImage = missing({ serviceType: 'volumev3', interfaces: ['public'] });
    expect(hasCode(noImage, 'KEYSTONE_NO_ENDPOINT')).toBe(true);
    expect(noImage?.message).toContain('has no "volumev3" service (it lists: identity, image)');
    expect(missing({ serviceType: 'image', interfaces: ['internal'], region: 'R2' })?.message).toContain('has no internal endpoint for "image" in region R2');
  });
});
