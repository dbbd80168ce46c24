// The flattener's advisory RBD lock on the image it flattens: its cookie names the holder (host, boot, PID
// namespace, pid) and whether it holds a journal lease with the lock, so that the next flattener can tell
// whether the holder may still be working (see takeLock).
import type { Image } from '../ceph/index.js';
import { codeOf } from '../errors.js';
import { isNotFound } from './classify.js';
import type { FlattenerEvent, Outcome } from './flattener.js';
import type { JournalEntry } from './journal/journal.js';
import { currentOwner, describeOwner, ownerState, type Owner } from './names.js';

const COOKIE_PREFIX = 'snapstore-flattener ';

export interface Holder {
  owner: Owner;
  /** When the lock was taken (ms since the epoch). */
  at: number;
  /** Set by flatteners that hold a journal lease with the lock: their lock is never broken by age. */
  lease?: true;
}

/** The lock cookie names its holder, so that the next flattener can tell whether the holder still lives. */
function lockCookie(): string {
  return COOKIE_PREFIX + JSON.stringify({ owner: currentOwner(), at: Date.now(), lease: true } satisfies Holder);
}

function holderOf(cookie: string): Holder | null {
  if (!cookie.startsWith(COOKIE_PREFIX)) return null;
  try {
    const h = JSON.parse(cookie.slice(COOKIE_PREFIX.length)) as Holder;
    return h && typeof h.at === 'number' && typeof h.owner?.host === 'string' && typeof h.owner.pid === 'number' ? h : null;
  } catch {
    return null;
  }
}

/**
 * The lock's cookie, or why the image is left alone (a live flattener holds it). Called with the image's
 * flatten lease held: a lock of a leased flattener (whose lease this one took over, `previous`, or which
 * gave it up) or of a provably dead one is broken; a flattener of a version before the journal holds a
 * lock without a lease, broken only once older than `staleLockMs`.
 */
export async function takeLock(
  image: Image,
  name: string,
  opts: { staleLockMs: number; emit: (e: FlattenerEvent) => void; previous: { entry: JournalEntry; why: string } | null },
): Promise<string | Outcome> {
  for (let attempt = 0; attempt < 2; attempt++) {
    const cookie = lockCookie();
    try {
      await image.lockAcquireExclusive(cookie);
      return cookie;
    } catch (err) {
      if (codeOf(err) !== 'BUSY') throw err;
    }
    for (const locker of await image.listLockers()) {
      const holder = holderOf(locker.cookie);
      if (!holder) return { state: 'skipped', why: `locked by ${locker.client} (cookie ${JSON.stringify(locker.cookie)}), not a flattener` };
      const state = ownerState(holder.owner);
      const age = Date.now() - holder.at;
      let why: string | null = null;
      if (state === 'dead') why = `its flattener ${describeOwner(holder.owner)} is dead`;
      // This flattener holds the image's lease now: a leased holder's lease is over (taken over or given up).
      else if (holder.lease) why = opts.previous?.why ?? 'its flattener no longer holds the flatten lease';
      else if (age > opts.staleLockMs) why = `its lock is ${Math.round(age / 1000)} s old (stale after ${opts.staleLockMs / 1000} s)`;
      if (!why) return { state: 'skipped', why: `being flattened by ${describeOwner(holder.owner)}` };
      // librbd blocklists the holder: a flattener wrongly thought dead can no longer write anything.
      await image.breakLock(locker.client, locker.cookie).catch((err: unknown) => {
        if (!isNotFound(err)) throw err;
      });
      opts.emit({ type: 'lock-broken', image: name, holder: describeOwner(holder.owner), why });
    }
  }
  return { state: 'skipped', why: 'the lock was taken again at once' };
}

