// Location strings: exact round trips with glance_store's quoting, and strict refusal of everything else.
import { describe, expect, it } from 'vitest';
import {
  checkImageId,
  formatFileLocation,
  formatLocation,
  formatRbdLocation,
  parseFileLocation,
  parseGlanceDirectUrl,
  parseGlanceLocation,
  parseGlanceLocations,
  parseLocation,
  parseRbdLocation,
  parseRbdSource,
  quotePart,
} from '../src/location.js';
import { BadLocation } from '../src/store.js';

const FSID = '8f1b7c2e-5a3d-4e6f-9a0b-1c2d3e4f5a6b';
const KEY = 'AQBx5FNhAAAAABAAtAn1Swme3Q1vC1KZ2fNtwQ==';

function badLocation(input: unknown): BadLocation {
  try {
    parseLocation(input as string);
  } catch (err) {
    expect(err).toBeInstanceOf(BadLocation);
    return err as BadLocation;
  }
  throw new Error(`parsed: ${JSON.stringify(input)}`);
}

describe('rbd locations', () => {
  it('parses the full form', () => {
    expect(parseLocation(`rbd://${FSID}/images/0f3a2b4c-aaaa/snap`)).toEqual({
      scheme: 'rbd',
      fsid: FSID,
      pool: 'images',
      image: '0f3a2b4c-aaaa',
      snapshot: 'snap',
    });
  });

  it('parses the legacy form as the image head in the default pool', () => {
    expect(parseLocation('rbd://0f3a2b4c-aaaa')).toEqual({ scheme: 'rbd', fsid: null, pool: null, image: '0f3a2b4c-aaaa', snapshot: null });
  });

  it('quotes each part like urllib.parse.quote(part, "")', () => {
    // Reference values computed with Python 3: urllib.parse.quote(s, '').
    expect(quotePart('a/b c@d:e%f')).toBe('a%2Fb%20c%40d%3Ae%25f');
    expect(quotePart('A-Z_a.z~0')).toBe('A-Z_a.z~0');
    expect(quotePart("!*'();+$,=[]")).toBe('%21%2A%27%28%29%3B%2B%24%2C%3D%5B%5D');
    expect(formatRbdLocation(FSID, 'my pool', 'img/1', 'snap@x')).toBe(`rbd://${FSID}/my%20pool/img%2F1/snap%40x`);
  });

  it('round-trips exactly', () => {
    const urls = [
      `rbd://${FSID}/images/0f3a2b4c-aaaa/snap`,
      `rbd://${FSID}/my%20pool/img%2F1/snap%40x`,
      `rbd://${FSID}/p/%25%3A~/s`,
      'rbd://legacy-image_1.raw',
      `rbd://${'a'.repeat(255)}/${'b'.repeat(255)}/${'c'.repeat(255)}/${'d'.repeat(255)}`,
    ];
    for (const url of urls) expect(formatLocation(parseLocation(url))).toBe(url);
    const locs = [
      { scheme: 'rbd' as const, fsid: FSID, pool: 'a b', image: 'x/y?z#w', snapshot: '%' },
      { scheme: 'rbd' as const, fsid: 'not-a-uuid', pool: 'p', image: 'i', snapshot: 's' },
    ];
    for (const loc of locs) expect(parseLocation(formatLocation(loc))).toEqual(loc);
  });

  it('reads non-canonical escapes (Python 2 quoted "~", lower-case hex) and formats them canonically', () => {
    const loc = parseLocation(`rbd://${FSID}/p/a%7Eb%2fc/s`);
    expect(loc).toMatchObject({ image: 'a~b/c' });
    expect(formatLocation(loc)).toBe(`rbd://${FSID}/p/a~b%2Fc/s`);
  });

  it('accepts rbd://fsid/pool/image without a snapshot only as a source', () => {
    const url = `rbd://${FSID}/vms/instance-1_disk`;
    expect(parseRbdSource(url)).toEqual({ scheme: 'rbd', fsid: FSID, pool: 'vms', image: 'instance-1_disk', snapshot: null });
    expect(formatLocation(parseRbdSource(url))).toBe(url);
    expect(() => parseLocation(url)).toThrow(/only accepted as a source/);
    expect(() => parseRbdLocation(url)).toThrow(BadLocation);
    expect(parseRbdSource(`rbd://${FSID}/vms/disk/snap`).snapshot).toBe('snap');
    expect(parseRbdSource('rbd://disk').pool).toBeNull();
    expect(() => parseRbdSource('file:///x/y')).toThrow(BadLocation);
    expect(() => parseRbdSource(`rbd://${FSID}/vms`)).toThrow(BadLocation);
  });

  it('refuses to format what cannot be parsed back', () => {
    expect(() => formatLocation({ scheme: 'rbd', fsid: FSID, pool: '', image: 'i', snapshot: 's' })).toThrow(BadLocation);
    expect(() => formatLocation({ scheme: 'rbd', fsid: null, pool: null, image: 'a/b', snapshot: null })).toThrow(BadLocation);
    expect(() => formatLocation({ scheme: 'rbd', fsid: FSID, pool: null, image: 'i', snapshot: 's' })).toThrow(BadLocation);
    expect(() => formatLocation({ scheme: 'rbd', fsid: FSID, pool: 'p', image: 'é', snapshot: 's' })).toThrow(BadLocation);
  });
});

describe('file locations', () => {
  it('parses and round-trips file:// and filesystem://', () => {
    expect(parseLocation('file:///var/lib/glance/images/abc')).toEqual({ scheme: 'file', path: '/var/lib/glance/images/abc' });
    expect(parseFileLocation('filesystem:///data/x')).toEqual({ scheme: 'filesystem', path: '/data/x' });
    for (const url of ['file:///var/lib/glance/images/abc', 'filesystem:///data/x', 'file:///a%20b/c d@e']) {
      expect(formatLocation(parseLocation(url))).toBe(url);
    }
    expect(formatFileLocation('/data/images/1')).toBe('file:///data/images/1');
    expect(() => formatFileLocation('relative/1')).toThrow(BadLocation);
    expect(() => parseFileLocation(`rbd://${FSID}/p/i/s`)).toThrow(BadLocation);
  });
});

describe('malformed locations', () => {
  const cases: Array<[string, unknown]> = [
    ['empty', ''],
    ['not a string', 42],
    ['null', null],
    ['no scheme', 'images/abc'],
    ['unknown scheme', 'swift://container/object'],
    ['http', 'http://glance/images/1'],
    ['upper-case scheme', `RBD://${FSID}/images/i/snap`],
    ['single slash', 'rbd:/image'],
    ['rbd nothing', 'rbd://'],
    ['rbd two parts', `rbd://${FSID}/images`],
    ['rbd three parts', `rbd://${FSID}/images/image`],
    ['rbd five parts', `rbd://${FSID}/images/image/snap/more`],
    ['rbd trailing slash', `rbd://${FSID}/images/image/snap/`],
    ['rbd empty fsid', 'rbd:///images/image/snap'],
    ['rbd empty pool', `rbd://${FSID}//image/snap`],
    ['rbd empty image', `rbd://${FSID}/images//snap`],
    ['rbd empty snapshot', `rbd://${FSID}/images/image/`],
    ['rbd userinfo with key', `rbd://admin:${KEY}@${FSID}/images/image/snap`],
    ['rbd userinfo without password', `rbd://${KEY}@${FSID}/images/image/snap`],
    ['rbd userinfo legacy', `rbd://glance:${KEY}@image`],
    ['rbd query', `rbd://${FSID}/images/image/snap?x=1`],
    ['rbd query with key', `rbd://${FSID}/images/image/snap?key=${KEY}`],
    ['rbd fragment', `rbd://${FSID}/images/image/snap#frag`],
    ['rbd non-ASCII', `rbd://${FSID}/images/imäge/snap`],
    ['rbd encoded non-ASCII', `rbd://${FSID}/images/im%C3%A4ge/snap`],
    ['rbd newline', `rbd://${FSID}/images/ima\nge/snap`],
    ['rbd NUL', `rbd://${FSID}/images/image\u0000/snap`],
    ['rbd encoded control', `rbd://${FSID}/images/image%0A/snap`],
    ['rbd DEL', `rbd://${FSID}/images/image\u007f/snap`],
    ['rbd tab', `rbd://${FSID}/images/ima\tge/snap`],
    ['rbd bad escape', `rbd://${FSID}/images/image%zz/snap`],
    ['rbd truncated escape', `rbd://${FSID}/images/image%4`],
    ['rbd unquoted space', `rbd://${FSID}/my pool/image/snap`],
    ['rbd unquoted colon', `rbd://${FSID}/images/a:b/snap`],
    ['rbd dot-dot part', `rbd://${FSID}/images/../snap`],
    ['rbd encoded dot-dot', `rbd://${FSID}/%2E%2E/image/snap`],
    ['rbd over-long part', `rbd://${FSID}/images/${'x'.repeat(256)}/snap`],
    ['rbd over-long url', `rbd://${'y'.repeat(5000)}`],
    ['legacy with percent', 'rbd://ima%20ge'],
    ['legacy with space', 'rbd://ima ge'],
    ['file relative (host)', 'file://var/lib/glance/images/x'],
    ['file single slash', 'file:/var/lib/x'],
    ['file no path', 'file://'],
    ['file root only', 'file:///'],
    ['file dot-dot', 'file:///var/lib/glance/../../etc/passwd'],
    ['file dot segment', 'file:///var/./lib/x'],
    ['file empty segment', 'file:///var//lib/x'],
    ['file trailing slash', 'file:///var/lib/x/'],
    ['file query', 'file:///var/lib/x?y'],
    ['file fragment', 'file:///var/lib/x#y'],
    ['file userinfo', `file://root:${KEY}@/var/lib/x`],
    ['file non-ASCII', 'file:///var/lib/glänce/x'],
    ['file control char', 'file:///var/lib/x\r'],
    ['file over-long segment', `file:///var/${'z'.repeat(256)}`],
    ['file over-long path', `file://${'/abcdefgh'.repeat(600)}`],
    ['file trailing space', 'file:///var/lib/x '],
    ['localhost authority', 'file://localhost/var/lib/x'],
  ];

  it(`has at least 40 cases (${cases.length})`, () => {
    expect(cases.length).toBeGreaterThanOrEqual(40);
  });

  for (const [name, input] of cases) {
    it(`refuses ${name}`, () => {
      const err = badLocation(input);
      expect(err.code).toBe('BAD_LOCATION');
      const text = JSON.stringify(err) + err.message;
      expect(text).not.toContain(KEY);
    });
  }

  it('never echoes userinfo, even without a cephx-looking key', () => {
    const err = badLocation(`rbd://glance:hunter2@${FSID}/images/i/snap`);
    expect(err.message).not.toContain('hunter2');
    expect(JSON.stringify(err.context)).not.toContain('hunter2');
    expect(err.message).toContain('credentials');
  });
});

describe('Glance locations', () => {
  it('parses direct_url', () => {
    expect(parseGlanceDirectUrl(`rbd://${FSID}/images/abc/snap`)).toMatchObject({ pool: 'images', image: 'abc', snapshot: 'snap' });
    expect(() => parseGlanceDirectUrl(undefined)).toThrow(BadLocation);
  });

  it('parses locations entries, marking the ones snapstore cannot use', () => {
    const parsed = parseGlanceLocations([
      { url: `rbd://${FSID}/images/abc/snap`, metadata: { store: 'ceph' } },
      { url: 'file:///var/lib/glance/images/abc', metadata: {} },
      { url: 'https://user:secret@objects.example/v1/abc', metadata: {} },
      { url: 'rbd://bad/form' },
    ]);
    expect(parsed[0]).toMatchObject({ metadata: { store: 'ceph' }, location: { scheme: 'rbd', image: 'abc' } });
    expect(parsed[1]!.location).toEqual({ scheme: 'file', path: '/var/lib/glance/images/abc' });
    expect(parsed[2]!.location).toBeNull();
    expect(parsed[2]!.error).toBeInstanceOf(BadLocation);
    expect(JSON.stringify(parsed[2])).not.toContain('secret');
    expect(parsed[3]).toMatchObject({ location: null, metadata: {} });
  });

  it('refuses entries that are not {url, metadata}', () => {
    for (const entry of [null, 'rbd://x', { url: 1 }, { url: 'rbd://x', metadata: [] }, { url: 'rbd://x', metadata: 'm' }]) {
      expect(() => parseGlanceLocation(entry)).toThrow(BadLocation);
    }
    expect(() => parseGlanceLocations({})).toThrow(BadLocation);
  });
});

describe('image ids', () => {
  it('accepts Glance UUIDs and plain names', () => {
    for (const id of ['0f3a2b4c-1111-2222-3333-444455556666', 'image_1.raw', 'a', '~x', 'x'.repeat(255)]) {
      expect(checkImageId(id)).toBe(id);
    }
  });

  it('refuses ids that cannot name an image', () => {
    for (const id of ['', '.', '..', '.x', 'a/b', 'a b', 'a@b', 'é', 'a\nb', 'x'.repeat(256), 3, null]) {
      expect(() => checkImageId(id), JSON.stringify(id)).toThrow(expect.objectContaining({ code: 'INVALID_IMAGE_ID' }));
    }
  });
});
