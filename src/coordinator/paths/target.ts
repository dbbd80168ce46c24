// The run's image in the target store: whether its id is free, and where it will be.
import type { Store } from '../../store.js';
import type { Sink } from '../context.js';
import { TargetExistsError } from '../errors.js';

/** Refuses to start when the image id is taken (gc would otherwise count someone else's image as ours). */
export async function checkTargetFree(store: Store, method: 'direct' | 'copy', sink: Sink, imageId: string): Promise<void> {
  if (method === 'copy' && sink === 'glance') return;
  if (await store.exists(imageId)) {
    throw new TargetExistsError(`image ${imageId} already exists in the target store`, { imageId });
  }
}

/** Where the run's image will be, as its run record names it. */
export async function targetText(store: Store, imageId: string, sink: Sink): Promise<string> {
  return sink === 'glance' ? `glance:${imageId}` : store.locationOf(imageId);
}
