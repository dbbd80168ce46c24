// RbdStore's `get`: an image (at a snapshot) as a byte stream.
import { Readable } from 'node:stream';
import type { Image } from '../../ceph/index.js';
import { StoreNotFound } from '../../store.js';
import { mapRbdError } from './errors.js';

/**
 * Up to `readAhead` chunk reads in flight, none started while the consumer is not reading (backpressure);
 * the image is closed at the end, on error or on destroy.
 */
export class RbdReadStream extends Readable {
  private next: number;
  private readonly queue: Array<Promise<Buffer>> = [];

  constructor(
    private readonly image: Image,
    start: number,
    private readonly end: number,
    private readonly chunkSize: number,
    private readonly readAhead: number,
    private readonly what: string,
  ) {
    super({ highWaterMark: chunkSize });
    this.next = start;
  }

  private fill(): void {
    while (this.queue.length < this.readAhead && this.next < this.end) {
      // Reads align to chunk (object) boundaries after the first.
      const length = Math.min(this.chunkSize - (this.next % this.chunkSize), this.end - this.next);
      const read = this.image.read(this.next, length);
      read.catch(() => {});
      this.queue.push(read);
      this.next += length;
    }
  }

  override _read(): void {
    this.fill();
    const head = this.queue.shift();
    if (!head) {
      this.push(null);
      return;
    }
    head.then(
      (buf) => {
        if (this.destroyed) return;
        this.push(buf);
      },
      (err: unknown) => this.destroy(err instanceof StoreNotFound ? err : mapRbdError(err, this.what)),
    );
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    Promise.allSettled(this.queue)
      .then(() => this.image.close())
      .then(
        () => callback(err),
        (closeErr: unknown) => callback(err ?? mapRbdError(closeErr, this.what)),
      );
  }
}
