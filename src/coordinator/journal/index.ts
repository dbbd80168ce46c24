// The run journal (journal.ts), its leases (lease.ts) and who may take an entry over (liveness.ts).
export { decodeEntry, flattenEntryKey, JOURNAL_OBJECT, JournalConflict, RunJournal, runEntryKey, RUN_ENTRY_PREFIX, FLATTEN_ENTRY_PREFIX, QUEUED_ENTRY_PREFIX, type JournalEntry } from './journal.js';
export { Lease, leaseMs, type LeaseOptions } from './lease.js';
export { minThresholdSeconds } from './limits.js';
export { clockSkewMs, judge, type Verdict } from './liveness.js';
