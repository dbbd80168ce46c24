// RbdStore's IncrementalTarget: a new image made from an earlier one inside the cluster (a clone of its
// `snap`, flattened before it is finished, or later in the background: until then the earlier image's
// protected `snap` has a child, and deleting it is refused, by this store and by glance_store alike, so the
// two never break each other), and the record an
// incremental snapshot keeps on each image (metadata BASE_KEY) naming the source snapshot it holds.
import type { Image, Ioctx } from '../../ceph/index.js';
import type { CloneTarget, IncrementalTarget } from '../../store.js';
import { ceph, unlessMissing } from './errors.js';
import { BASE_KEY, OWN_KEY_PREFIX, PENDING_KEY, RBD_SNAPSHOT } from './layout.js';
import { discardImage, setMark } from './pending.js';

type Inspection = Awaited<ReturnType<IncrementalTarget['inspect']>>;

export class RbdIncrementalTarget implements IncrementalTarget {
  constructor(
    /** The store's pool through its own connection (which may write it). */
    private readonly io: () => Promise<Ioctx>,
    private readonly clones: CloneTarget,
  ) {}

  async identity(): Promise<string> {
    const { fsid, pool } = await this.clones.where();
    return `rbd://${fsid}/${pool}`;
  }

  async inspect(imageId: string): Promise<Inspection> {
    const io = await this.io();
    const what = `inspecting ${io.pool}/${imageId}`;
    const context = { pool: io.pool, image: imageId };
    const image = await unlessMissing(what, context, null, () => io.openImage(imageId, { readOnly: true }));
    if (image === null) return { ok: false, reason: `the previous image ${io.pool}/${imageId} is gone` };
    try {
      if ((await ceph(what, context, () => image.metadataGet(PENDING_KEY))) !== null) {
        return { ok: false, reason: `the previous image ${io.pool}/${imageId} is unfinished` };
      }
      const snap = (await ceph(what, context, () => image.snapList())).find((s) => s.namespace === 'user' && s.name === RBD_SNAPSHOT);
      if (!snap || !(await ceph(what, context, () => image.snapIsProtected(RBD_SNAPSHOT)))) {
        return { ok: false, reason: `the previous image ${io.pool}/${imageId} has no protected @${RBD_SNAPSHOT}` };
      }
      return { ok: true, record: await ceph(what, context, () => image.metadataGet(BASE_KEY)), sizeBytes: snap.size };
    } finally {
      await image.close().catch(() => {});
    }
  }

  async derive(baseId: string, imageId: string, sizeBytes: number, marker: string, opts: { features?: string[] } = {}): Promise<Image> {
    const io = await this.io();
    const what = `making ${io.pool}/${imageId} from ${io.pool}/${baseId}@${RBD_SNAPSHOT}`;
    const context = { pool: io.pool, image: imageId };
    await ceph(what, context, () => io.clone(baseId, RBD_SNAPSHOT, io, imageId, opts.features ? { features: opts.features } : {}));
    let image: Image | null = null;
    try {
      const opened = await ceph(what, context, () => io.openImage(imageId));
      image = opened;
      await setMark(opened, marker);
      // librbd copied the base's metadata (its record, maybe a queued flatten): none of it is this image's.
      for (const key of Object.keys(await ceph(what, context, () => opened.metadataList()))) {
        if (key.startsWith(OWN_KEY_PREFIX) && key !== PENDING_KEY) await ceph(what, context, () => opened.metadataRemove(key));
      }
      if ((await opened.size()) !== sizeBytes) await ceph(`${what}: resizing`, context, () => opened.resize(sizeBytes));
      return opened;
    } catch (err) {
      await (image as Image | null)?.close().catch(() => {});
      await discardImage(io, imageId).catch(() => {});
      throw err;
    }
  }

  async setRecord(imageId: string, record: string, image?: Image): Promise<void> {
    const io = await this.io();
    const what = `recording the base of ${io.pool}/${imageId}`;
    const context = { pool: io.pool, image: imageId };
    if (image) return ceph(what, context, () => image.metadataSet(BASE_KEY, record));
    const opened = await ceph(what, context, () => io.openImage(imageId));
    try {
      await ceph(what, context, () => opened.metadataSet(BASE_KEY, record));
    } finally {
      await opened.close().catch(() => {});
    }
  }

  async finish(
    imageId: string,
    image: Image,
    opts: { flatten?: boolean; signal?: AbortSignal; onProgress?: (done: number, total: number) => void } = {},
  ): Promise<string> {
    const context = { pool: image.ioctx.pool, image: imageId };
    const { flatten = true, ...progress } = opts;
    if (flatten) await ceph(`flattening ${image.ioctx.pool}/${imageId}`, context, () => image.flatten(progress));
    return this.clones.finalize(imageId, image);
  }
}
