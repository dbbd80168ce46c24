// The queue of instant snapshots waiting for their flatten. The request itself is RBD metadata on the clone
// (`snapstore.flatten`, instant.ts), which dies with the clone; the images pool's journal indexes it
// (`queued.<imageId>`), so a flattener's poll and gc read one omap object and open only the queued clones
// rather than every image of the pool. The request stays the truth, the entry only says where to look:
//  - queueing writes the entry, then the request, then the entry again with new text: a poll that saw no
//    request between the first two drops the entry only by compare-and-set on the text it read, so that
//    drop either fails or is undone by the third write;
//  - the flattener removes the request, then the entry; an entry whose clone is gone (deleted from Glance)
//    or has no request any more is dropped by the next listing, after checking that one clone.
// Clones queued by versions before the index are not in it: `scanAll` (flattener and gc --scan-images)
// opens every image of the pool once, and indexes those it finds.
import { randomUUID } from 'node:crypto';
import type { Image, Ioctx } from '../ceph/index.js';
import { isNotFound } from './classify.js';
import { FLATTEN_KEY, decodeFlattenRequest, encodeFlattenRequest, type FlattenRequest } from './instant.js';
import { QUEUED_ENTRY_PREFIX, RunJournal } from './journal/journal.js';

export interface QueuedFlatten {
  image: string;
  request: FlattenRequest;
}

const entryKey = (image: string) => `${QUEUED_ENTRY_PREFIX}${image}`;
const entryText = () => JSON.stringify({ v: 1, token: randomUUID() });

/** Queues the flatten of an open clone: index entry, request, entry again (see above). */
export async function queueFlattenRequest(image: Image, request: FlattenRequest): Promise<void> {
  const journal = new RunJournal(image.ioctx);
  await journal.put(entryKey(image.name), entryText());
  await image.metadataSet(FLATTEN_KEY, encodeFlattenRequest(request));
  await journal.put(entryKey(image.name), entryText());
}

/** Removes the request of an open clone (gone already is fine), then its index entry. */
export async function dequeueFlatten(image: Image): Promise<void> {
  const journal = new RunJournal(image.ioctx);
  const key = entryKey(image.name);
  const text = await journal.read(key);
  await image.metadataRemove(FLATTEN_KEY).catch((err: unknown) => {
    if (!isNotFound(err)) throw err;
  });
  if (text !== null) await journal.swap(key, text, null).catch(() => {});
}

/** The clone's request, or null when it is gone or has none. */
async function requestOf(io: Ioctx, name: string): Promise<FlattenRequest | null> {
  let image: Image;
  try {
    image = await io.openImage(name, { readOnly: true });
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
  try {
    return decodeFlattenRequest(await image.metadataGet(FLATTEN_KEY));
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  } finally {
    await image.close();
  }
}

/**
 * snapstore clones in `io`'s pool still waiting for their flatten, oldest request first: those the index
 * names (`scanAll`: every image of the pool, for clones queued before the index). Stale entries are dropped.
 */
export async function pendingFlattens(io: Ioctx, opts: { scanAll?: boolean } = {}): Promise<QueuedFlatten[]> {
  const journal = new RunJournal(io);
  const index = await journal.list(QUEUED_ENTRY_PREFIX);
  const names = [...index.keys()].map((k) => k.slice(QUEUED_ENTRY_PREFIX.length));
  if (opts.scanAll) names.push(...(await io.listImages()).filter((n) => !index.has(entryKey(n))));
  const out: QueuedFlatten[] = [];
  for (const name of names) {
    const key = entryKey(name);
    const text = index.get(key);
    const request = await requestOf(io, name);
    if (request) out.push({ image: name, request });
    // A reader that may not write the pool (a dry run's, an operator's) leaves the index as it is.
    if (request && text === undefined) await journal.put(key, entryText()).catch(() => {});
    if (!request && text !== undefined) await journal.swap(key, text, null).catch(() => {});
  }
  return out.sort((x, y) => x.request.requestedAt.localeCompare(y.request.requestedAt));
}
