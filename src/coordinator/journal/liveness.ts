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

export function judge(entry: JournalEntry, now: number): Verdict {
  if (entry.abandoned) return { take: true, why: 'abandoned by its run', blocklist: null };
  const state = ownerState(entry.owner);
  const who = describeOwner(entry.owner);
  if (state === 'dead') return { take: true, why: `owner ${who} is dead`, blocklist: entry.client };
  if (state === 'alive') return { take: false, why: `owner alive (${who})` };
  const until = Date.parse(entry.leaseUntil);
  if (now <= until + clockSkewMs()) return { take: false, why: `lease valid until ${entry.leaseUntil} (${who})` };
  return { take: true, why: `lease expired at ${entry.leaseUntil} (${who})`, blocklist: entry.client };
}
