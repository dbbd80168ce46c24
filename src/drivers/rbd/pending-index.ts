// RbdStore's index of its pending images: one RADOS object in the store's pool (PENDING_INDEX_OBJECT)
// whose omap has one key per marked image, the way Ceph keeps rbd_directory and rbd_trash. gc and
// listPending read it (one paged omap read) and open only the images it names, so their cost follows the
// pending work, not the pool. The image's metadata mark stays the truth; the index only says where to look:
//  - marking writes the entry first, then the metadata, then rewrites the entry with a new token. A
//    listPending that saw the image unmarked (between the first two) drops the entry only by
//    compare-and-set on the text it read, so it either fails or is undone by that third write;
//  - clearing removes the metadata first, then the entry (compare-and-set: a mark meanwhile keeps it);
//  - an entry whose image is gone, or unmarked, is dropped by listPending after it checked that image;
//  - `add` writes an entry that carries its mark (`creating`) before it creates the image, so a kill
//    between librbd's create and the metadata write still leaves an image the index names with its mark.
// Marks written by versions before the index are not in it: listPending({ scanAll: true }) (gc
// --scan-images) still visits every image, and puts each mark it finds into the index.
import { randomUUID } from 'node:crypto';
import { loadNative, type Ioctx } from '../../ceph/index.js';
import { codeOf } from '../../errors.js';
import { ceph, mapRbdError, unlessMissing } from './errors.js';
import { PENDING_INDEX_OBJECT } from './layout.js';

export interface IndexEntry {
  v: 1;
  /** New at every write: what a compare-and-set drop compares. */
  token: string;
  /** Written before `add` created the image: the mark it gets (the image may not carry it yet). */
  creating?: string;
}

function encode(creating?: string): string {
  return JSON.stringify({ v: 1, token: randomUUID(), ...(creating === undefined ? {} : { creating }) } satisfies IndexEntry);
}

export function decodeIndexEntry(text: string): IndexEntry | null {
  try {
    const e = JSON.parse(text) as IndexEntry;
    return e?.v === 1 && typeof e.token === 'string' && (e.creating === undefined || typeof e.creating === 'string') ? e : null;
  } catch {
    return null;
  }
}

/** Adds (or renews) `name`'s entry; `creating`: the mark `add` is about to give the image it creates. */
export async function indexPut(io: Ioctx, name: string, creating?: string): Promise<string> {
  const text = encode(creating);
  const rbd = await loadNative();
  await ceph(`indexing ${io.pool}/${name} as pending`, { pool: io.pool, image: name }, () =>
    rbd.writeOp(io, PENDING_INDEX_OBJECT, [{ op: 'create', exclusive: false }, { op: 'omapSet', entries: { [name]: text } }]),
  );
  return text;
}

/**
 * Removes `name`'s entry if it is still `expected` (no entry is fine); false when it changed meanwhile (a
 * mark was written since, and keeps it).
 */
export async function indexDrop(io: Ioctx, name: string, expected: string): Promise<boolean> {
  const rbd = await loadNative();
  try {
    await rbd.writeOp(io, PENDING_INDEX_OBJECT, [{ op: 'assertExists' }, { op: 'omapCmp', equals: { [name]: expected } }, { op: 'omapRm', keys: [name] }]);
    return true;
  } catch (err) {
    if (rbd.isCompareFailed(err)) return false;
    if (codeOf(err) === 'NOT_FOUND') return true;
    throw mapRbdError(err, `dropping ${io.pool}/${name} from the pending index`, { pool: io.pool, image: name });
  }
}

/** `name`'s entry text, or null. */
export async function indexGet(io: Ioctx, name: string): Promise<string | null> {
  const rbd = await loadNative();
  const read = async () => (await rbd.omapGet(io, PENDING_INDEX_OBJECT, [name])).get(name)?.toString('utf8') ?? null;
  return unlessMissing(`reading the pending index of pool ${io.pool}`, { pool: io.pool, image: name }, null, read);
}

/** Every entry (image name → entry text); empty when nothing was ever marked in this pool. */
export async function indexList(io: Ioctx): Promise<Map<string, string>> {
  const rbd = await loadNative();
  const all = await unlessMissing(`listing the pending index of pool ${io.pool}`, { pool: io.pool }, null, () => rbd.omapListAll(io, PENDING_INDEX_OBJECT));
  return new Map([...(all ?? [])].map(([k, v]) => [k, v.toString('utf8')]));
}
