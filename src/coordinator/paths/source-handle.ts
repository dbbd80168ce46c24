// The source image, opened read-write (to take a snapshot and keep the run record) only while it is needed:
// a killed process's watch on the disk's header would linger for osd_client_watch_timeout and hold up
// gc's work there, so the handle is closed while the long steps (flatten, copy) run and reopened after.
// A source that is an existing snapshot may be readable only: then it is opened read-only.
import type { Image, Ioctx } from '../../ceph/index.js';
import { isPermission } from '../classify.js';

export class SourceHandle {
  private image: Promise<Image> | null = null;
  readOnly = false;

  constructor(
    private readonly io: Ioctx,
    private readonly name: string,
    private readonly mustWrite: boolean,
  ) {}

  async open(): Promise<Image> {
    try {
      this.image = this.io.openImage(this.name);
      return await this.image;
    } catch (err) {
      this.image = null;
      if (this.mustWrite || !isPermission(err)) throw err;
      this.readOnly = true;
      return this.get();
    }
  }

  get(): Promise<Image> {
    if (!this.image) {
      const p = this.io.openImage(this.name, this.readOnly ? { readOnly: true } : {});
      this.image = p;
      p.catch(() => {
        if (this.image === p) this.image = null;
      });
    }
    return this.image;
  }

  async close(): Promise<void> {
    const p = this.image;
    this.image = null;
    if (p) await (await p.catch(() => null))?.close();
  }
}
