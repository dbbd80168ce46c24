// A lease on one journal entry: taken with compare-and-set, renewed on a timer that never keeps the
// process alive, given back (entry removed) when the work is done, or left to expire (abandoned) when it
// could not be undone. Another process takes the entry over only after the lease ran out (see liveness.ts).
import { errorText } from '../events.js';
import { currentOwner } from '../names.js';
import { type JournalEntry, JournalConflict, type RunJournal } from './journal.js';
import { leaseMs } from './limits.js';

export { leaseMs };

/** Renewals per lease period: three chances to renew before it runs out (15 s of a 60 s lease, minus one). */
const RENEWALS_PER_LEASE = 4;

export interface LeaseOptions {
  /** The owner's RADOS client address, for a taker to blocklist. */
  client: string | null;
  /** Told about failed renewals and a lost lease (taken over by another process). */
  onEvent?: (what: 'renew-failed' | 'lost', detail: string) => void;
}

export class Lease {
  #text: string;
  #entry: JournalEntry;
  #timer: NodeJS.Timeout | null = null;
  #renewing: Promise<void> = Promise.resolve();
  #lost = false;

  private constructor(
    readonly journal: RunJournal,
    entry: JournalEntry,
    text: string,
    private readonly opts: LeaseOptions,
  ) {
    this.#entry = entry;
    this.#text = text;
  }

  /**
   * Takes `key` (absent, or `expected` when taking over an expired entry) for this process and starts
   * renewing it. @throws JournalConflict when the entry is not (any more) as expected
   */
  static async take(journal: RunJournal, key: string, body: Omit<JournalEntry, 'v' | 'key' | 'owner' | 'client' | 'leaseUntil'>, opts: LeaseOptions, expected = ''): Promise<Lease> {
    const entry: JournalEntry = { v: 1, key, owner: currentOwner(), client: opts.client, leaseUntil: '', ...body };
    entry.leaseUntil = new Date(Date.now() + leaseMs()).toISOString();
    const text = JSON.stringify(entry);
    await journal.swap(key, expected, text);
    const lease = new Lease(journal, entry, text, opts);
    lease.#start();
    return lease;
  }

  get key(): string {
    return this.#entry.key;
  }
  /** True once another process took the entry over. */
  get lost(): boolean {
    return this.#lost;
  }
  get leaseUntil(): string {
    return this.#entry.leaseUntil;
  }

  #start(): void {
    this.#timer = setInterval(() => {
      this.#renewing = this.#renewing.then(() => this.renew());
    }, leaseMs() / RENEWALS_PER_LEASE);
    // The lease must never be why the process stays up.
    this.#timer.unref();
  }

  /** Extends the lease (and applies `change` to the entry); a lost lease stops renewing. */
  async renew(change: Partial<JournalEntry> = {}): Promise<void> {
    if (this.#lost) return;
    const next: JournalEntry = { ...this.#entry, ...change, leaseUntil: new Date(Date.now() + leaseMs()).toISOString() };
    const text = JSON.stringify(next);
    try {
      await this.journal.swap(this.key, this.#text, text);
      this.#entry = next;
      this.#text = text;
    } catch (err) {
      if (err instanceof JournalConflict) {
        this.#lost = true;
        this.stop();
        this.opts.onEvent?.('lost', `${this.key} was taken over: ${errorText(err)}`);
        return;
      }
      // A transient failure (an OSD failing over): the next tick tries again, well within the lease.
      this.opts.onEvent?.('renew-failed', errorText(err));
    }
  }

  /**
   * Applies `change` to the entry now, renewing the lease with it; unlike renew() a failure is thrown (a
   * change that must be on record before the work goes on, e.g. a group's commit).
   * @throws JournalConflict when another process took the entry over
   */
  async update(change: Partial<JournalEntry>): Promise<void> {
    const apply = async (): Promise<void> => {
      if (this.#lost) throw new JournalConflict(`journal entry ${this.key} was taken over`);
      const next: JournalEntry = { ...this.#entry, ...change, leaseUntil: new Date(Date.now() + leaseMs()).toISOString() };
      const text = JSON.stringify(next);
      await this.journal.swap(this.key, this.#text, text);
      this.#entry = next;
      this.#text = text;
    };
    const done = this.#renewing.then(apply);
    // The timer's renewals queue behind this one whatever its outcome.
    this.#renewing = done.catch(() => {});
    await done;
  }

  /** Stops renewing (idempotent); the entry stays until release() or until its lease runs out. */
  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** The work is done: stops renewing and removes the entry (unless another process took it). */
  async release(): Promise<void> {
    this.stop();
    await this.#renewing;
    if (this.#lost) return;
    await this.journal.swap(this.key, this.#text, null);
    this.#lost = true;
  }

  /** The work failed and left something: the entry stays, marked abandoned, for gc to take at once. */
  async abandon(): Promise<void> {
    this.stop();
    await this.#renewing;
    if (this.#lost) return;
    const next: JournalEntry = { ...this.#entry, abandoned: true, leaseUntil: new Date().toISOString() };
    const text = JSON.stringify(next);
    await this.journal.swap(this.key, this.#text, text);
    this.#entry = next;
    this.#text = text;
  }
}
