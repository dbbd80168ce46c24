// The one location grammar (src/location.ts): exact round trips with glance_store's quoting, the forms each
// role accepts, and strict refusal of everything else, each for its own reason.
import { describe, expect, it } from 'vitest';
import { parseSource } from '../src/coordinator/source.js';
import { parseGlanceDirectUrl, parseGlanceLocation, parseGlanceLocations, parseRbdUrl } from '../src/glance/locations.js';
import {
  checkImageId,
  formatFileLocation,
  formatLocation,
  formatRbdLocation,
  formatSourceLocation,
  type Location,
  parseFileLocation,
  parseLocation,
  parseRbdLocation,
  parseSourceLocation,
  quotePart,
  type SourceLocation,
} from '../src/location.js';
import { BadLocation } from '../src/store.js';

const FSID = '8f1b7c2e-5a3d-4e6f-9a0b-1c2d3e4f5a6b';
const KEY = 'AQBx5FNhAAAAABAAtAn1Swme3Q1vC1KZ2fNtwQ==';

const rbd = (fsid: string | null, pool: string | null, image: string, snapshot: string | null) =>
  ({ scheme: 'rbd', fsid, pool, image, snapshot }) as const;

/** What `fn` throws, which must be a BadLocation. */
function refusal(fn: () => unknown): BadLocation {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(BadLocation);
  return thrown as BadLocation;
}

describe('canonical locations round-trip exactly', () => {
  const table: Array<[string, Location]> = [
    [`rbd://${FSID}/images/0f3a2b4c-aaaa/snap`, rbd(FSID, 'images', '0f3a2b4c-aaaa', 'snap')],
    [`rbd://${FSID}/my%20pool/img%2F1/snap%40x`, rbd(FSID, 'my pool', 'img/1', 'snap@x')],
    [`rbd://${FSID}/p/%25%3A~/s`, rbd(FSID, 'p', '%:~', 's')],
    ['rbd://f00/images/a%2Fb%20c/snap', rbd('f00', 'images', 'a/b c', 'snap')],
    ['rbd://legacy-image_1.raw', rbd(null, null, 'legacy-image_1.raw', null)],
    ['rbd://~', rbd(null, null, '~', null)],
    [
      `rbd://${'a'.repeat(255)}/${'b'.repeat(255)}/${'c'.repeat(255)}/${'d'.repeat(255)}`,
      rbd('a'.repeat(255), 'b'.repeat(255), 'c'.repeat(255), 'd'.repeat(255)),
    ],
    ['file:///var/lib/glance/images/abc', { scheme: 'file', path: '/var/lib/glance/images/abc' }],
    ['filesystem:///data/x', { scheme: 'filesystem', path: '/data/x' }],
    ['file:///a b/c d@e', { scheme: 'file', path: '/a b/c d@e' }],
    ['file:///.hidden/x', { scheme: 'file', path: '/.hidden/x' }],
  ];
  it.each(table)('%s', (text, expected) => {
    expect(parseLocation(text)).toEqual(expected);
    expect(formatLocation(expected)).toBe(text);
  });

  it('quotes each part like urllib.parse.quote(part, "")', () => {
    // Reference values computed with Python 3: urllib.parse.quote(s, '').
    expect(quotePart('a/b c@d:e%f')).toBe('a%2Fb%20c%40d%3Ae%25f');
    expect(quotePart('A-Z_a.z~0')).toBe('A-Z_a.z~0');
    expect(quotePart("!*'();+$,=[]")).toBe('%21%2A%27%28%29%3B%2B%24%2C%3D%5B%5D');
    expect(formatRbdLocation(FSID, 'my pool', 'img/1', 'snap@x')).toBe(`rbd://${FSID}/my%20pool/img%2F1/snap%40x`);
  });

  it('round-trips every printable ASCII character in every RBD part', () => {
    for (let c = 0x20; c <= 0x7e; c++) {
      const name = `a${String.fromCharCode(c)}b`;
      const text = formatRbdLocation(FSID, name, name, name);
      expect(parseRbdLocation(text), text).toEqual(rbd(FSID, name, name, name));
      expect(formatLocation(parseLocation(text))).toBe(text);
    }
  });

  it('formats file locations', () => {
    expect(formatFileLocation('/data/images/1')).toBe('file:///data/images/1');
    expect(parseFileLocation('filesystem:///data/x')).toEqual({ scheme: 'filesystem', path: '/data/x' });
  });
});

describe('non-canonical input is read, and formatted canonically', () => {
  const table: Array<[string, string]> = [
    // Python 2 quoted "~"; lower-case hex is valid percent-encoding.
    [`rbd://${FSID}/p/a%7Eb%2fc/s`, `rbd://${FSID}/p/a~b%2Fc/s`],
    [`rbd://${FSID}/%70ool/i/s`, `rbd://${FSID}/pool/i/s`],
  ];
  it.each(table)('%s', (text, canonical) => {
    const loc = parseLocation(text);
    expect(formatLocation(loc)).toBe(canonical);
    expect(parseLocation(canonical)).toEqual(loc);
  });
});

describe('SOURCE strings', () => {
  const canonical: Array<[string, SourceLocation]> = [
    [`rbd://${FSID}/vms/instance-1_disk`, rbd(FSID, 'vms', 'instance-1_disk', null) as SourceLocation],
    [`rbd://${FSID}/vms/d/s%2Bx`, rbd(FSID, 'vms', 'd', 's+x') as SourceLocation],
    ['p/d@s', rbd(null, 'p', 'd', 's') as SourceLocation],
    ['p/d', rbd(null, 'p', 'd', null) as SourceLocation],
    ['file:///var/tmp/a b.raw', { scheme: 'file', path: '/var/tmp/a b.raw' }],
  ];
  it.each(canonical)('%s round-trips', (text, expected) => {
    expect(parseSourceLocation(text, 'default')).toEqual(expected);
    expect(formatSourceLocation(expected)).toBe(text);
  });

  it('takes the default pool for a bare image, and lower-cases the fsid', () => {
    expect(parseSourceLocation('d@s', 'vms')).toEqual(rbd(null, 'vms', 'd', 's'));
    expect(parseSourceLocation(`rbd://${FSID.toUpperCase()}/vms/d`)).toEqual(rbd(FSID, 'vms', 'd', null));
  });

  it('has no rbd CLI spelling for names with "/" or "@"', () => {
    expect(refusal(() => formatSourceLocation({ ...rbd(null, 'p', 'a@b', null), pool: 'p' })).message).toMatch(/no pool\/image/);
    expect(formatSourceLocation({ ...rbd(FSID, 'p', 'a@b', null), pool: 'p' })).toBe(`rbd://${FSID}/p/a%40b`);
  });
});

// [name, input, why it is refused]. Each reason is asserted: a parser that refused for another reason (or,
// worse, parsed) fails the case.
const REFUSED_EVERYWHERE: Array<[string, unknown, RegExp]> = [
  ['empty', '', /empty/],
  ['not a string', 42, /expected a string, got number/],
  ['null', null, /expected a string, got null/],
  ['unknown scheme', 'swift://container/object', /scheme "swift" is not supported/],
  ['http', 'http://glance/images/1', /scheme "http" is not supported/],
  ['upper-case scheme', `RBD://${FSID}/images/i/snap`, /want rbd:\/\/ \(schemes are lower case\)/],
  ['single slash', 'rbd:/image', /want rbd:\/\/ \(two slashes\)/],
  ['rbd two parts', `rbd://${FSID}/images`, /components, has 2/],
  ['rbd five parts', `rbd://${FSID}/images/image/snap/more`, /components, has 5/],
  ['rbd trailing slash', `rbd://${FSID}/images/image/snap/`, /components, has 5/],
  ['rbd empty fsid', 'rbd:///images/image/snap', /fsid is empty/],
  ['rbd empty pool', `rbd://${FSID}//image/snap`, /pool is empty/],
  ['rbd empty image', `rbd://${FSID}/images//snap`, /image is empty/],
  ['rbd empty snapshot', `rbd://${FSID}/images/image/`, /snapshot is empty/],
  ['rbd userinfo with key', `rbd://admin:${KEY}@${FSID}/images/image/snap`, /credentials/],
  ['rbd userinfo without password', `rbd://${KEY}@${FSID}/images/image/snap`, /credentials/],
  ['rbd userinfo legacy', `rbd://glance:${KEY}@image`, /credentials/],
  ['rbd query', `rbd://${FSID}/images/image/snap?x=1`, /query/],
  ['rbd query with key', `rbd://${FSID}/images/image/snap?key=${KEY}`, /query/],
  ['rbd fragment', `rbd://${FSID}/images/image/snap#frag`, /fragment/],
  ['rbd non-ASCII', `rbd://${FSID}/images/imäge/snap`, /non-ASCII/],
  ['rbd encoded non-ASCII', `rbd://${FSID}/images/im%C3%A4ge/snap`, /image contains a non-ASCII/],
  ['rbd lone surrogate', `rbd://${FSID}/images/im\ud800/snap`, /non-ASCII/],
  ['rbd newline', `rbd://${FSID}/images/ima\nge/snap`, /control character/],
  ['rbd NUL', `rbd://${FSID}/images/image\u0000/snap`, /control character/],
  ['rbd encoded NUL', `rbd://${FSID}/images/image%00/snap`, /image contains a control character/],
  ['rbd encoded control', `rbd://${FSID}/images/image%0A/snap`, /image contains a control character/],
  ['rbd DEL', `rbd://${FSID}/images/image\u007f/snap`, /control character/],
  ['rbd tab', `rbd://${FSID}/images/ima\tge/snap`, /control character/],
  ['rbd bad escape', `rbd://${FSID}/images/image%zz/snap`, /image has a malformed percent escape/],
  ['rbd truncated escape', `rbd://${FSID}/images/image/snap%4`, /snapshot has a malformed percent escape/],
  ['rbd broken UTF-8 escape', `rbd://${FSID}/images/%E0%A4%A/snap`, /image has a malformed percent escape/],
  ['rbd lone percent', `rbd://${FSID}/images/%/snap`, /image has a malformed percent escape/],
  ['rbd unquoted space', `rbd://${FSID}/my pool/image/snap`, /pool contains " " unquoted/],
  ['rbd unquoted colon', `rbd://${FSID}/images/a:b/snap`, /image contains ":" unquoted/],
  ['rbd dot-dot part', `rbd://${FSID}/images/../snap`, /image is "\.\."/],
  ['rbd encoded dot-dot', `rbd://${FSID}/%2E%2E/image/snap`, /pool is "\.\."/],
  ['rbd encoded leading space', `rbd://${FSID}/%20images/image/snap`, /pool starts or ends with white space/],
  ['rbd over-long part', `rbd://${FSID}/images/${'x'.repeat(256)}/snap`, /image is longer than 255/],
  ['rbd over-long url', `rbd://${'y'.repeat(5000)}`, /longer than 4112 characters/],
  ['file relative (host)', 'file://var/lib/glance/images/x', /not absolute/],
  ['file single slash', 'file:/var/lib/x', /want file:\/\/ \(two slashes\)/],
  ['file no path', 'file://', /has no path/],
  ['file root only', 'file:///', /has no path/],
  ['file dot-dot', 'file:///var/lib/glance/../../etc/passwd', /"\.\." segment/],
  ['file dot segment', 'file:///var/./lib/x', /"\." segment/],
  ['file empty segment', 'file:///var//lib/x', /empty segment/],
  ['file trailing slash', 'file:///var/lib/x/', /empty segment or a trailing slash/],
  ['file query', 'file:///var/lib/x?y', /query/],
  ['file fragment', 'file:///var/lib/x#y', /fragment/],
  ['file userinfo', `file://root:${KEY}@/var/lib/x`, /credentials/],
  ['file non-ASCII', 'file:///var/lib/glänce/x', /non-ASCII/],
  ['file control char', 'file:///var/lib/x\r', /control character/],
  ['file NUL', 'file:///var/lib/x\u0000y', /control character/],
  ['file percent', 'file:///var/tmp/a%20b.raw', /contains "%"/],
  ['file bad escape', 'file:///var/tmp/a%zz', /contains "%"/],
  ['file over-long segment', `file:///var/${'z'.repeat(256)}`, /segment longer than 255/],
  ['file over-long path', `file://${'/abcdefgh'.repeat(600)}`, /longer than 4112 characters/],
  ['file trailing space', 'file:///var/lib/x ', /white space/],
  ['localhost authority', 'file://localhost/var/lib/x', /not absolute/],
];

/** Refused as stored-image locations, accepted (or refused differently) as sources. */
const REFUSED_AS_LOCATION: Array<[string, unknown, RegExp]> = [
  ['no scheme', 'images/abc', /has no scheme/],
  ['rbd nothing', 'rbd://', /has no image name/],
  ['rbd head (source form)', `rbd://${FSID}/images/image`, /components, has 3 \(rbd:\/\/fsid\/pool\/image is only accepted as a source\)/],
  ['rbd pool/image/snap without fsid', 'rbd://images/image/snap', /must have 1 or 4 components, has 3/],
  ['legacy with percent', 'rbd://ima%20ge', /legacy image name contains "%"/],
  ['legacy with space', 'rbd://ima ge', /legacy image name contains " "/],
];

/** Refused as sources, for reasons of their own. */
const REFUSED_AS_SOURCE: Array<[string, unknown, RegExp]> = [
  ['whitespace only', '  ', /empty/],
  ['legacy rbd://image', 'rbd://disk', /names no cluster and pool/],
  ['rbd pool/image/snap without fsid', 'rbd://vms/disk/snap', /"vms" is not a cluster fsid/],
  ['rbd fsid not a UUID', 'rbd://x/vms/d', /"x" is not a cluster fsid/],
  ['absolute path', '/abs/path', /looks like a path; write it as file:\/\/\/abs\/path/],
  ['spec with two slashes', 'a/b/c', /is not \[pool\/\]image\[@snap\]/],
  ['spec with two @', 'p/d@s@t', /is not \[pool\/\]image\[@snap\]/],
  ['spec without pool or default', 'd', /names no pool/],
  ['spec with empty image', 'p/', /image is empty/],
  ['spec with empty snapshot', 'p/d@', /snapshot is empty/],
  ['spec with a scheme-like pool', 'vms:x/d', /scheme "vms" is not supported/],
  ['spec with NUL', 'p/d\u0000', /control character/],
  ['spec with leading space', ' p/d', /pool starts or ends with white space/],
];

describe('refusals', () => {
  it.each([...REFUSED_EVERYWHERE, ...REFUSED_AS_LOCATION])('location: %s', (_name, input, why) => {
    const err = refusal(() => parseLocation(input as string));
    expect(err.code).toBe('BAD_LOCATION');
    expect(err.message).toMatch(why);
    expect(JSON.stringify(err) + err.message).not.toContain(KEY);
  });

  it.each([...REFUSED_EVERYWHERE, ...REFUSED_AS_SOURCE])('source: %s', (_name, input, why) => {
    const err = refusal(() => parseSourceLocation(input as string, input === 'd' ? undefined : 'vms'));
    expect(err.message).toMatch(why);
    expect(err.message).toMatch(/^invalid source/);
    // The coordinator's wrapper keeps the reason under its own code, and never lets a URIError through.
    expect(() => parseSource(input as string, input === 'd' ? undefined : 'vms')).toThrow(
      expect.objectContaining({ code: 'BAD_SOURCE', message: expect.stringMatching(why) }),
    );
  });

  it('never echoes userinfo, even without a cephx-looking key', () => {
    const err = refusal(() => parseLocation(`rbd://glance:hunter2@${FSID}/images/i/snap`));
    expect(err.message).not.toContain('hunter2');
    expect(JSON.stringify(err.context)).not.toContain('hunter2');
    expect(err.message).toContain('credentials');
  });

  it('refuses to format what would not parse back', () => {
    const cases: Location[] = [
      rbd(FSID, '', 'i', 's'),
      rbd(null, null, 'a/b', null),
      rbd(null, null, 'a%20b', null),
      rbd(FSID, null, 'i', 's'),
      rbd(FSID, 'p', 'é', 's'),
      rbd(FSID, 'p', ' i', 's'),
      rbd('not-a-uuid', 'p', 'i', null),
      { scheme: 'file', path: 'relative/1' },
      { scheme: 'file', path: '/a/../b' },
      { scheme: 'file', path: '/100%' },
    ];
    for (const loc of cases) expect(() => formatLocation(loc), JSON.stringify(loc)).toThrow(BadLocation);
    expect(() => formatFileLocation('relative/1')).toThrow(BadLocation);
  });

  it('keeps each parser to its scheme', () => {
    expect(refusal(() => parseFileLocation(`rbd://${FSID}/p/i/s`)).message).toMatch(/not a file:\/\/ location/);
    expect(refusal(() => parseRbdLocation('file:///x/y')).message).toMatch(/not an rbd:\/\/ location/);
  });
});

describe('Glance locations', () => {
  it('parses direct_url', () => {
    expect(parseGlanceDirectUrl(`rbd://${FSID}/images/abc/snap`)).toEqual(rbd(FSID, 'images', 'abc', 'snap'));
    expect(refusal(() => parseGlanceDirectUrl(undefined)).message).toMatch(/direct_url: expected a string/);
    expect(refusal(() => parseGlanceDirectUrl(`rbd://${FSID}/images/abc`)).message).toMatch(/components, has 3/);
  });

  it('parses locations entries, marking the ones snapstore cannot use', () => {
    const parsed = parseGlanceLocations([
      { url: `rbd://${FSID}/images/abc/snap`, metadata: { store: 'ceph' } },
      { url: 'file:///var/lib/glance/images/abc', metadata: {} },
      { url: 'https://user:secret@objects.example/v1/abc', metadata: {} },
      { url: 'rbd://bad/form' },
    ]);
    expect(parsed[0]).toEqual({ url: `rbd://${FSID}/images/abc/snap`, metadata: { store: 'ceph' }, location: rbd(FSID, 'images', 'abc', 'snap') });
    expect(parsed[1]?.location).toEqual({ scheme: 'file', path: '/var/lib/glance/images/abc' });
    expect(parsed[2]?.location).toBeNull();
    expect(parsed[2]?.error?.message).toMatch(/credentials/);
    expect(JSON.stringify(parsed[2]) + parsed[2]?.error?.message).not.toContain('secret');
    expect(parsed[3]).toMatchObject({ location: null, metadata: {} });
    expect(parsed[3]?.error?.message).toMatch(/components, has 2/);
  });

  it('refuses entries that are not {url, metadata}', () => {
    for (const entry of [null, 'rbd://x', { url: 1 }, { url: 'rbd://x', metadata: [] }, { url: 'rbd://x', metadata: 'm' }]) {
      expect(() => parseGlanceLocation(entry), JSON.stringify(entry)).toThrow(/invalid Glance location entry/);
    }
    expect(() => parseGlanceLocations({})).toThrow(/expected an array/);
  });

  it('parseRbdUrl is the same grammar, null for what it refuses', () => {
    expect(parseRbdUrl(`rbd://${FSID}/my%20pool/i/s`)).toEqual({ fsid: FSID, pool: 'my pool', image: 'i', snapshot: 's' });
    for (const url of ['rbd://a/b/c', `rbd://${FSID}/p/%zz/s`, 'file:///x', 'rbd://x\u0000', 'RBD://x']) {
      expect(parseRbdUrl(url), url).toBeNull();
    }
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
