// When a journal entry's work may be taken over: never while its owner is alive or its lease runs; at once
// when its owner is provably dead (same host, boot and PID namespace, pid gone) or it was abandoned.
import { describeOwner, ownerState } from '../names.js';
import type { JournalEntry } from './journal.js';
import { leaseMs } from './limits.js';

/**
 * Clocks of different hosts disagree a little: an entry from another host counts as expired only this long
 * after its leaseUntil (NTP keeps hosts well within 10 s; a test's short lease gets half its length).
 */
export function clockSkewMs(): number {
  return Math.min(10_000, leaseMs() / 2);
}

export type Verdict =
  | { take: false; why: string }
  /** `blocklist`: the owner's client address, to blocklist before breaking its locks (null: none known). */
  | { take: true; why: string; blocklist: string | null };

/**
 * A live owner does not keep an entry whose lease ran out: the owner renews while it works, so an expired
 * lease means the work stopped (a run that ended but could not remove its entry in an outage) or the owner
 * is stuck — either way its client is blocklisted before anything is taken.
 */
export function judge(entry: JournalEntry, now: number): Verdict {
  if (entry.abandoned) return { take: true, why: 'abandoned by its run', blocklist: null };
  const who = describeOwner(entry.owner);
  if (ownerState(entry.owner) === 'dead') return { take: true, why: `owner ${who} is dead`, blocklist: entry.client };
  const until = Date.parse(entry.leaseUntil);
  if (now <= until + clockSkewMs()) return { take: false, why: `lease valid until ${entry.leaseUntil} (${who})` };
  return { take: true, why: `lease expired at ${entry.leaseUntil} (${who})`, blocklist: entry.client };
}
