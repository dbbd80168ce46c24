// The public shapes of a group snapshot (SnapshotCoordinator.snapshotGroup / checkGroup).
import type { Reason, SnapshotOptions, SnapshotResult } from '../types.js';

export interface GroupSnapshotOptions extends Omit<SnapshotOptions, 'imageId' | 'flatten' | 'name'> {
  /** Name of each Glance image: `<name> (<disk>)`; default `<disk> snapshot`. */
  name?: string;
}

/** One disk's image of a group snapshot. */
export interface GroupImageResult extends SnapshotResult {
  /** The disk, `rbd://fsid/pool/image`. */
  source: string;
}

export interface GroupSnapshotResult {
  /** Shared by the images: the Glance property `snapstore_group` of each. */
  groupId: string;
  /** The RBD group the disks were snapshotted through (a temporary one is gone again). */
  group: { pool: string; name: string; temporary: boolean };
  images: GroupImageResult[];
  seconds: number;
}

export interface GroupDiskPlan {
  source: string;
  /** The path this disk takes within a group snapshot. */
  method: 'direct' | 'copy';
  /** The disk's own findings (as `check` of it alone), then why the group changes its path. */
  reasons: Reason[];
}

export interface GroupPlan {
  /** Whether the disks can be snapshotted together (one cluster, one group or none). */
  possible: boolean;
  /** The group-level findings: the cluster, the group. */
  reasons: Reason[];
  disks: GroupDiskPlan[];
}
