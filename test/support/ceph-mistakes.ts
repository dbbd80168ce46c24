// The operator's commonest Ceph mistakes (issue 21), as ceph.conf + keyring copies of the test bed's cluster
// a: each points at the real cluster (or, for unreachable monitors, at a port where nothing listens) with
// one thing wrong. Used by the library and the CLI tests of the connection errors.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../scripts/testbed.mjs';
import type { ClusterInfo } from './testbed.js';

export interface Mistake {
  /** What the operator got wrong, for test names. */
  what: string;
  /** The cephx id snapstore connects as. */
  user: string;
  confPath: string;
  /** The keyring the message must name, when one is used. */
  keyring: string | null;
  code: 'CEPH_AUTH' | 'CEPH_UNREACHABLE';
  exit: 1 | 2;
}

/** A cephx key as `ceph-authtool --gen-print-key` makes it: AES type, creation time, 16 random bytes. */
export function newKey(): string {
  const b = Buffer.alloc(28);
  b.writeUInt16LE(1, 0);
  b.writeUInt32LE(Math.floor(Date.now() / 1000), 2);
  b.writeUInt16LE(16, 10);
  randomBytes(16).copy(b, 12);
  return b.toString('base64');
}

function keyOf(keyringPath: string): string {
  const m = /key\s*=\s*(\S+)/.exec(readFileSync(keyringPath, 'utf8'));
  if (!m) throw new Error(`no key in ${keyringPath}`);
  return m[1]!;
}

/**
 * Writes the mistakes into a new directory. `secrets` are every key that appears in any of these files or
 * in the test bed's keyrings the tests use: none may appear in any output.
 */
export interface Mistakes {
  dir: string;
  mistakes: Mistake[];
  secrets: string[];
  /** cluster a's [global] (no keyring line), for more variants. */
  global: string;
  /** Writes `<name>.conf`: `global` then `userSection`. */
  conf: (name: string, userSection: string, global?: string) => string;
}

export async function makeMistakes(a: ClusterInfo): Promise<Mistakes> {
  const dir = mkdtempSync(join(tmpdir(), 'snapstore-mistakes-'));
  // cluster a's [global] without its admin keyring line and without the per-user sections.
  const base = readFileSync(a.conf, 'utf8')
    .replace(/\n\[client\.[\s\S]*$/, '\n')
    .replace(/^keyring = .*\n/m, '');
  const novaKeyring = join(a.dir, 'nova.keyring');
  const novaKey = keyOf(novaKeyring);
  const wrongKey = newKey();
  const truncated = novaKey.slice(0, 36);
  const file = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  const conf = (name: string, userSection: string, global = base) => file(`${name}.conf`, `${global}\n${userSection}\n`);

  const wrongKeyring = file('wrong.keyring', `[client.nova]\n\tkey = ${wrongKey}\n`);
  const ghostKeyring = file('ghost.keyring', `[client.ghost]\n\tkey = ${wrongKey}\n`);
  const missing = join(dir, 'nowhere.keyring');
  const port = (await freePort()) as number;
  const deadMons = base.replace(/^mon host = .*$/m, `mon host = v2:127.0.0.1:${port}`);
  const mistakes: Mistake[] = [
    { what: 'a malformed inline key', user: 'nova', confPath: conf('malformed', `[client.nova]\nkey = ${truncated}`), keyring: null, code: 'CEPH_AUTH', exit: 2 },
    { what: 'a wrong key', user: 'nova', confPath: conf('wrong', `[client.nova]\nkeyring = ${wrongKeyring}`), keyring: wrongKeyring, code: 'CEPH_AUTH', exit: 2 },
    { what: 'a missing keyring', user: 'nova', confPath: conf('missing', `[client.nova]\nkeyring = ${missing}`), keyring: missing, code: 'CEPH_AUTH', exit: 2 },
    { what: 'an unknown user', user: 'ghost', confPath: conf('ghost', `[client.ghost]\nkeyring = ${ghostKeyring}`), keyring: ghostKeyring, code: 'CEPH_AUTH', exit: 2 },
    { what: 'unreachable monitors', user: 'nova', confPath: conf('deadmons', `[client.nova]\nkeyring = ${novaKeyring}`, deadMons), keyring: novaKeyring, code: 'CEPH_UNREACHABLE', exit: 1 },
  ];
  const secrets = [novaKey, wrongKey, truncated, keyOf(join(a.dir, 'glance.keyring')), keyOf(join(a.dir, 'keyring'))];
  return { dir, mistakes, secrets, global: base, conf };
}

/** Fails when any of `secrets` (or a 20-character piece of one) appears in `text`. */
export function expectNoSecret(text: string, secrets: string[]): void {
  for (const s of secrets) {
    for (const piece of [s, s.slice(0, 20), s.slice(-22, -2)]) {
      if (text.includes(piece)) throw new Error(`a key (${piece.slice(0, 4)}…) appears in the output`);
    }
  }
}
