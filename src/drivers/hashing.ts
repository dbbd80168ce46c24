// The checksums a driver's `add` returns: MD5 (Glance's `checksum`) and SHA-512 (`os_hash_value`) of every
// byte, zeros included. Hashing is the most expensive thing a copy does: OpenSSL manages ~700 MiB/s for MD5
// and ~800 MiB/s for SHA-512 per core, so a 4 GiB disk costs ~11 s of CPU whatever its allocation. Three ways:
//  - inline: both hashes on the calling (JS) thread; for small or unknown sizes.
//  - workers: one worker thread per algorithm, so the two run in parallel with each other and with the I/O.
//    Data is copied once into a fixed shared slab (16 slots of 1 MiB) both workers read; an all-zero piece
//    of 1 MiB or more is sent as a count ("hash n zeros") and costs no copy. A full slab, or too many zeros
//    queued, makes `update` wait (backpressure), so memory stays at 16 MiB whatever the image size. (Fresh
//    SharedArrayBuffers per piece were freed only when three isolates' GCs agreed: 1 GiB RSS on a 4 GiB copy.)
//  - off: no hashes (the caller records none, or Glance computes them itself).
import { createHash, type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { InternalError } from '../errors.js';

export interface Digests {
  /** MD5, hex (Glance's legacy `checksum`). */
  checksum: string;
  /** SHA-512, hex (Glance's `os_hash_value`). */
  multihash: string;
  hashAlgo: 'sha512';
}

export interface ImageHasher {
  /** Hashes `data` next. A returned promise means: wait before handing more (the workers are behind). */
  update(data: Uint8Array): void | Promise<void>;
  /** Hashes `length` zero bytes next (a hole), without the caller materializing them; same promise rule. */
  zeros(length: number): void | Promise<void>;
  /** The digests of everything updated so far, or null when hashing is off. Call once. */
  digest(): Promise<Digests | null>;
  /** Releases threads. Safe to call twice, and after digest(). */
  close(): Promise<void>;
}

/** Announced sizes from this on are hashed in worker threads. */
export const WORKER_HASH_THRESHOLD = 64 * 1024 * 1024;

export function createImageHasher(options: { checksums?: boolean; size?: number | undefined }): ImageHasher {
  if (options.checksums === false) return new NoHasher();
  if (options.size !== undefined && options.size >= WORKER_HASH_THRESHOLD) return new WorkerHasher();
  return new InlineHasher();
}

export class NoHasher implements ImageHasher {
  update(): void {}
  zeros(): void {}
  async digest(): Promise<null> {
    return null;
  }
  async close(): Promise<void> {}
}

export class InlineHasher implements ImageHasher {
  private readonly md5: Hash = createHash('md5');
  private readonly sha512: Hash = createHash('sha512');

  update(data: Uint8Array): void {
    this.md5.update(data);
    this.sha512.update(data);
  }

  zeros(length: number): void {
    // Inline hashing is for small or unknown sizes; a hole still costs its bytes' hashing here.
    for (let n = length; n > 0; n -= ZERO_PROBE.length) this.update(n >= ZERO_PROBE.length ? ZERO_PROBE : ZERO_PROBE.subarray(0, n));
  }

  async digest(): Promise<Digests> {
    return { checksum: this.md5.digest('hex'), multihash: this.sha512.digest('hex'), hashAlgo: 'sha512' };
  }

  async close(): Promise<void> {}
}

const ZERO_PROBE = Buffer.alloc(64 * 1024);

/** True when every byte of `data` is zero (memcmp against a zero page: tens of GB/s). */
export function isAllZero(data: Uint8Array): boolean {
  for (let i = 0; i < data.length; i += ZERO_PROBE.length) {
    const end = Math.min(i + ZERO_PROBE.length, data.length);
    if (Buffer.compare(data.subarray(i, end), ZERO_PROBE.subarray(0, end - i)) !== 0) return false;
  }
  return true;
}

// Runs as CommonJS in the worker (eval), so it needs no file next to the compiled module. The slab is the
// shared memory the main thread copies data into; a message names a slot of it, or a count of zeros.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const hash = createHash(workerData.algorithm);
// Linux: this thread's own nice value. Hashing yields the CPU to the event loop and to librados' threads.
try { require('node:os').setPriority(0, 5); } catch {}
const slab = new Uint8Array(workerData.slab);
const zeros = Buffer.alloc(1024 * 1024);
parentPort.on('message', (m) => {
  if (m.digest) {
    parentPort.postMessage({ digest: hash.digest('hex') });
    return;
  }
  if (m.slot >= 0) {
    hash.update(slab.subarray(m.slot * workerData.slotBytes, m.slot * workerData.slotBytes + m.length));
  } else {
    for (let n = m.length; n > 0; n -= zeros.length) hash.update(n >= zeros.length ? zeros : zeros.subarray(0, n));
  }
  parentPort.postMessage({ slot: m.slot, length: m.length });
});
`;

/** Size of one slot of the shared slab: data is copied in and handed to the workers a slot at a time. */
const SLOT_BYTES = 1024 * 1024;
/** Slots in the slab: the memory hashing holds (16 MiB) whatever the image size. */
const SLOTS = 16;
/** Pieces this large and all zero are sent as a count, not copied. */
const ZERO_RUN_BYTES = 1024 * 1024;
/** Zero bytes handed to a worker and not yet hashed: how far the reader may run ahead through holes. */
const MAX_QUEUED_ZEROS = 256 * 1024 * 1024;

class HashThread {
  private readonly worker: Worker;
  queuedZeros = 0;
  failure: Error | null = null;
  private exited = false;
  private digestWaiter: { resolve: (hex: string) => void; reject: (err: Error) => void } | null = null;

  constructor(algorithm: string, slab: SharedArrayBuffer, onDone: (slot: number) => void) {
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { algorithm, slab, slotBytes: SLOT_BYTES } });
    this.worker.on('message', (m: { slot?: number; length?: number; digest?: string }) => {
      if (m.digest !== undefined) {
        this.digestWaiter?.resolve(m.digest);
        this.digestWaiter = null;
        return;
      }
      const slot = m.slot ?? -1;
      if (slot < 0) this.queuedZeros -= m.length ?? 0;
      onDone(slot);
    });
    this.worker.on('error', (err) => this.fail(err, onDone));
    this.worker.on('exit', (code) => {
      this.exited = true;
      this.fail(new InternalError(`the ${algorithm} hashing thread exited (code ${code})`), onDone);
    });
  }

  private fail(err: Error, onDone: (slot: number) => void): void {
    this.failure ??= err;
    this.digestWaiter?.reject(this.failure);
    this.digestWaiter = null;
    onDone(-1);
  }

  /** Hash `length` bytes of `slot`, or (slot -1) `length` zeros. */
  post(slot: number, length: number): void {
    if (slot < 0) this.queuedZeros += length;
    this.worker.postMessage({ slot, length });
  }

  digest(): Promise<string> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.digestWaiter = { resolve, reject };
      this.worker.postMessage({ digest: true });
    });
  }

  async terminate(): Promise<void> {
    if (this.exited) return;
    this.failure ??= new InternalError('hashing closed');
    await this.worker.terminate();
  }
}

export class WorkerHasher implements ImageHasher {
  private readonly slab = new SharedArrayBuffer(SLOTS * SLOT_BYTES);
  private readonly threads: [md5: HashThread, sha512: HashThread];
  /** Per slot, how many threads have still to hash it (0 = free). */
  private readonly pending = new Array<number>(SLOTS).fill(0);
  /** The slot being filled, and how full it is. */
  private current = -1;
  private filled = 0;
  private waiter: (() => void) | null = null;
  private closed = false;

  constructor() {
    const done = (slot: number) => {
      if (slot >= 0) this.pending[slot] = (this.pending[slot] ?? 1) - 1;
      const w = this.waiter;
      this.waiter = null;
      w?.();
    };
    this.threads = [new HashThread('md5', this.slab, done), new HashThread('sha512', this.slab, done)];
  }

  update(data: Uint8Array): void | Promise<void> {
    this.check();
    if (data.length >= ZERO_RUN_BYTES && isAllZero(data)) return this.zeros(data.length);
    return this.copy(data);
  }

  zeros(length: number): void | Promise<void> {
    this.check();
    if (length === 0) return;
    this.flush();
    for (const t of this.threads) t.post(-1, length);
    if (this.threads.some((t) => t.queuedZeros > MAX_QUEUED_ZEROS)) {
      return this.waitFor(() => this.threads.every((t) => t.queuedZeros <= MAX_QUEUED_ZEROS));
    }
  }

  /** Copies `data` into slots, handing each full slot to the workers; waits for a free slot when none is. */
  private async copy(data: Uint8Array): Promise<void> {
    let pos = 0;
    while (pos < data.length) {
      if (this.current < 0) {
        let free = this.pending.indexOf(0);
        if (free < 0) {
          await this.waitFor(() => this.pending.includes(0));
          free = this.pending.indexOf(0);
        }
        this.current = free;
        this.filled = 0;
        this.pending[free] = -1; // being filled
      }
      const n = Math.min(data.length - pos, SLOT_BYTES - this.filled);
      new Uint8Array(this.slab, this.current * SLOT_BYTES + this.filled, n).set(data.subarray(pos, pos + n));
      this.filled += n;
      pos += n;
      if (this.filled === SLOT_BYTES) this.flush();
    }
  }

  /** Hands the partly filled slot to the workers. */
  private flush(): void {
    if (this.current < 0) return;
    this.pending[this.current] = this.threads.length;
    for (const t of this.threads) t.post(this.current, this.filled);
    this.current = -1;
    this.filled = 0;
  }

  private async waitFor(ready: () => boolean): Promise<void> {
    while (!ready()) {
      this.check();
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
    }
    this.check();
  }

  private check(): void {
    if (this.closed) throw new InternalError('hasher already closed');
    const failed = this.threads.find((t) => t.failure);
    if (failed) throw failed.failure;
  }

  async digest(): Promise<Digests> {
    this.check();
    try {
      this.flush();
      const [md5, sha512] = this.threads;
      const [checksum, multihash] = await Promise.all([md5.digest(), sha512.digest()]);
      return { checksum, multihash, hashAlgo: 'sha512' };
    } finally {
      await this.close();
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.threads.map((t) => t.terminate()));
  }
}

/** The checksum fields of an AddResult: the digests, or nulls when hashing was off. */
export function checksumFields(d: Digests | null): { checksum: string | null; multihash: string | null; hashAlgo: 'sha512' | null } {
  return d ?? { checksum: null, multihash: null, hashAlgo: null };
}
