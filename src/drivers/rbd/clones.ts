// RbdStore's CloneTarget: the direct path clones a disk into the store's pool itself (as the disks' user,
// holding its own handle of the clone); the store marks it, and turns the finished clone into one of its
// images by giving it the snapshot its locations name.
import type { CephCluster, Image } from '../../ceph/index.js';
import { formatRbdLocation } from '../../location.js';
import { StoreError, type CloneTarget } from '../../store.js';
import { ceph } from './errors.js';
import { RBD_SNAPSHOT } from './layout.js';
import { removeMark, setMark } from './pending.js';

export class RbdCloneTarget implements CloneTarget {
  constructor(
    private readonly cluster: () => Promise<CephCluster>,
    private readonly pool: string,
  ) {}

  async where(): Promise<{ fsid: string; pool: string }> {
    return { fsid: (await this.cluster()).fsid, pool: this.pool };
  }

  async markPending(image: Image, marker: string): Promise<void> {
    await setMark(await this.check(image), marker);
  }

  async clearPending(image: Image): Promise<void> {
    await removeMark(await this.check(image));
  }

  async finalize(imageId: string, image: Image): Promise<string> {
    const fsid = (await this.check(image, imageId)).ioctx.cluster.fsid;
    const what = `finalizing ${this.pool}/${imageId}`;
    const context = { pool: this.pool, image: imageId, snapshot: RBD_SNAPSHOT };
    await ceph(`${what}: creating @${RBD_SNAPSHOT}`, context, () => image.snapCreate(RBD_SNAPSHOT));
    await ceph(`${what}: protecting @${RBD_SNAPSHOT}`, context, () => image.snapProtect(RBD_SNAPSHOT));
    return formatRbdLocation(fsid, this.pool, imageId, RBD_SNAPSHOT);
  }

  /** A handle of an image elsewhere (or of another image) would mark or finalize the wrong thing. */
  private async check(image: Image, imageId?: string): Promise<Image> {
    const { fsid, pool } = await this.where();
    const io = image.ioctx;
    const here = io.cluster.fsid === fsid && io.pool === pool && io.namespace === '';
    if (!here || (imageId !== undefined && image.name !== imageId)) {
      const want = imageId === undefined ? `an image of pool ${pool} in cluster ${fsid}` : `${pool}/${imageId} in cluster ${fsid}`;
      throw new StoreError('INVALID_ARGUMENT', `${io.pool}/${image.name} (cluster ${io.cluster.fsid}) is not ${want}`, {
        context: { pool: io.pool, image: image.name },
      });
    }
    return image;
  }
}
