// `snapstore flattener --status`: where each queued instant snapshot stands — with ceph-mgr (queued,
// running with its percentage, failed with Ceph's message, gone) or waiting for snapstore's flattener.
import type { Ioctx } from '../ceph/index.js';
import type { FlattenRequest } from './instant.js';
import { describeTaskState, taskState, type MgrTask, type MgrTaskState } from './mgr-flatten.js';
import { withImage } from './rbd-util.js';

export interface FlattenStatusEntry {
  image: string;
  requestedAt: string;
  /** Who flattens it: ceph-mgr's task queue or snapstore's flattener. */
  by: 'mgr' | 'flattener';
  /** The mgr's task, when it has one. */
  taskId: string | null;
  state: 'queued' | 'running' | 'failed' | 'gone' | 'unknown' | 'waiting' | 'flattened';
  /** Fraction done (0..1) while running. */
  progress: number | null;
  /** In words: the state, Ceph's failure message, or why the mgr's view is missing. */
  detail: string;
}

export interface FlattenStatus {
  images: FlattenStatusEntry[];
  /** Why ceph-mgr's queue could not be read (no store user configured, no mgr cap, no mgr answering). */
  mgrError: string | null;
}

/** Status of every pending flatten; `queue` is the mgr's task list or why it could not be read. */
export async function flattenStatus(
  io: Ioctx,
  pending: Array<{ image: string; request: FlattenRequest }>,
  queue: { tasks: MgrTask[] } | { error: string },
): Promise<FlattenStatus> {
  const tasks = 'tasks' in queue ? queue.tasks : null;
  const images: FlattenStatusEntry[] = [];
  for (const { image, request } of pending) {
    const base = { image, requestedAt: request.requestedAt, taskId: request.mgrTask?.id ?? null, progress: null };
    // The mgr does not touch snapstore's entry: a finished task leaves it on an image with no parent.
    const hasParent = await withImage(io, image, { readOnly: true }, true, async (h) => (await h.parentInfo()) !== null);
    if (!hasParent) {
      images.push({ ...base, by: request.mgrTask ? 'mgr' : 'flattener', state: 'flattened', detail: 'flattened; the next flattener pass removes the queue entry' });
    } else if (!request.mgrTask) {
      images.push({ ...base, by: 'flattener', state: 'waiting', detail: 'waiting for `snapstore flattener`' });
    } else if (!tasks) {
      images.push({ ...base, by: 'mgr', state: 'unknown', detail: `ceph-mgr's queue cannot be read: ${'error' in queue ? queue.error : ''}` });
    } else {
      const s: MgrTaskState = taskState(tasks, request.mgrTask.id);
      const detail = s.state === 'gone' ? 'gone from ceph-mgr\'s queue: the flattener takes it over' : describeTaskState(s);
      images.push({ ...base, by: 'mgr', state: s.state, progress: s.state === 'running' ? s.progress : null, detail });
    }
  }
  return { images, mgrError: 'error' in queue ? queue.error : null };
}
