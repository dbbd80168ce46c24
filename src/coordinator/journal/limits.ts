// The smallest thresholds an operator may give gc (--older-than) and the flattener (--stale-lock-seconds).
// Runs in the journal are judged by their lease, not by these; the thresholds judge what the journal does
// not account for, and must cover the moment between gc reading the journal and a run that registered just
// after creating its first object: two lease periods. No imports: the CLI checks options with it before
// loading anything.

/** The default lease (lease.ts renews it every quarter); SNAPSTORE_LEASE_SECONDS shortens it for tests. */
export function leaseMs(): number {
  const s = Number(process.env.SNAPSTORE_LEASE_SECONDS);
  return Number.isFinite(s) && s >= 3 ? s * 1000 : 60_000;
}

/** The least `--older-than` / `--stale-lock-seconds`, in seconds. */
export function minThresholdSeconds(): number {
  return Math.ceil((2 * leaseMs()) / 1000);
}
