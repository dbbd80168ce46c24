// The Store contract every driver implements (glance_store's driver.Store, typed): add a stream under an
// image id, read it back (whole or a range), size it, delete it. Plus the error classes every driver throws,
// so callers switch on one set of codes whatever the backend.
import type { Readable } from 'node:stream';
import type { Image } from './ceph/index.js';
import { SnapstoreError, type ErrorContext } from './errors.js';

export type { FileLocation, Location, RbdLocation } from './location.js';

/** What `add` returns: enough for Glance to record the image (`locations[].url`, size, checksum, os_hash). */
export interface AddResult {
  /** Where the data now lives, e.g. `rbd://<fsid>/images/<id>/snap` or `file:///var/lib/glance/images/<id>`. */
  location: string;
  /** Bytes stored (the stream's length). */
  size: number;
  /** MD5 of the data, hex (Glance's legacy `checksum`); null when added with `checksums: false`. */
  checksum: string | null;
  /** SHA-512 of the data, hex (Glance's `os_hash_value`); null when added with `checksums: false`. */
  multihash: string | null;
  /** Glance's `os_hash_algo`; null when added with `checksums: false`. */
  hashAlgo: 'sha512' | null;
}

export interface AddOptions {
  /** Aborting stops the write and removes whatever was created; `add` then rejects with StoreAborted. */
  signal?: AbortSignal;
  /**
   * Compute `checksum` and `multihash` (default true). Hashing every byte costs ~1.5 s of CPU per GiB
   * (holes included); turn it off when nobody records them, or when Glance computes them itself.
   */
  checksums?: boolean;
  /**
   * Marks the image pending (opaque text, see `Store.markPending`) from its creation on, atomically with it:
   * a kill at any point of `add` leaves either nothing or a marked image. The mark stays after `add`
   * succeeds, until `clearPending`; a failed `add` removes it with the image.
   */
  pending?: string;
}

export interface ListPendingOptions {
  /**
   * Also look at every image of the store, for marks written by versions that kept no index of them (gc
   * --scan-images): as slow as the store is large. Stores whose listing is that scan already ignore it.
   */
  scanAll?: boolean;
}

/** One marked image, as `Store.listPending` reports it. */
export interface PendingEntry {
  imageId: string;
  /** The location the image has (or will have once finished) in this store. */
  location: string;
  /** The caller's text given to `markPending` (or `AddOptions.pending`). */
  marker: string;
}

/**
 * What the direct (clone) path needs from a store that can hold clones (`capabilities.canClone`): the path
 * makes the clone itself, as the disks' user, with its own open handle of it; the store says where clones
 * go and turns a finished clone into one of its images.
 */
/**
 * What an incremental snapshot needs from its target: an earlier image of this store as the base of a new
 * one, made inside the backend (never through the client), and a record on each image naming what it was
 * made from (the caller's opaque text, kept by the driver where it wants).
 */
export interface IncrementalTarget {
  /** Names where this store keeps its images (cluster and pool), as a pairing on the source records it. */
  identity(): Promise<string>;
  /**
   * Whether finished image `imageId` can be a base: its record and size, or why not (gone, unfinished,
   * its snapshot missing or unprotected).
   */
  inspect(imageId: string): Promise<{ ok: true; record: string | null; sizeBytes: number } | { ok: false; reason: string }>;
  /**
   * Makes `imageId` (of `sizeBytes`) from base `baseId` inside the backend, marked pending with `marker`,
   * and returns a writable handle of it; the caller writes what changed through it, then calls `finish`.
   * A failure leaves nothing; after it returns, `Store.discard(imageId)` removes it. `features`: those of
   * the new image where the backend has a choice (an image left unflattened for a background flatten needs
   * some and must lack others); the backend's defaults otherwise.
   */
  derive(baseId: string, imageId: string, sizeBytes: number, marker: string, opts?: { features?: string[] }): Promise<Image>;
  /** Writes the record on `imageId` (through `image` when given). */
  setRecord(imageId: string, record: string, image?: Image): Promise<void>;
  /**
   * Makes the derived image stand alone (unless `flatten: false`: then it still reads through to its base
   * until someone flattens it, and the base cannot be deleted meanwhile) and gives it the snapshot
   * locations name; returns its location.
   */
  finish(imageId: string, image: Image, opts?: { flatten?: boolean; signal?: AbortSignal; onProgress?: (done: number, total: number) => void }): Promise<string>;
}

export interface CloneTarget {
  /** The cluster and pool clones must be made in to become images of this store. */
  where(): Promise<{ fsid: string; pool: string }>;
  /** Marks the clone through the caller's open handle (the same mark as `Store.markPending`). */
  markPending(image: Image, marker: string): Promise<void>;
  /** Removes that mark; no mark is fine. */
  clearPending(image: Image): Promise<void>;
  /**
   * Creates and protects the snapshot this store's locations name through the caller's handle, and returns
   * the image's location (`rbd://fsid/pool/id/snap`). @throws StoreError INVALID_ARGUMENT when `image` is
   * not `imageId` in this store's pool.
   */
  finalize(imageId: string, image: Image): Promise<string>;
}

export interface GetOptions {
  /** First byte to return (default 0). Must be ≤ the image size. */
  offset?: number;
  /** Bytes to return from `offset`; clamped to the end of the image. Default: to the end. */
  length?: number;
}

/**
 * A run of `hole` zero bytes a sparse source does not materialize (the copy path's unallocated extents).
 * Stores with thin provisioning leave it unallocated (RBD skips it, the file store seeks past it), others
 * store zeros; the checksums cover it as zeros. It costs no work per byte of hole on the JS thread.
 */
export interface Hole {
  readonly hole: number;
}

/** One piece of a source: bytes, or (a sparse source) a run of zeros given as its length. */
export type StorePiece = Uint8Array | Hole;

/**
 * Data to store: any Node Readable (binary), or an async or plain iterable of byte chunks. An iterable may
 * also yield holes (`{ hole: n }`, see Hole) between byte chunks: the same data, without the zeros.
 */
export type StoreSource = Readable | AsyncIterable<StorePiece> | Iterable<StorePiece>;

/** Whether a piece of a source is a hole (a run of zeros given as its length). */
export function isHole(piece: unknown): piece is Hole {
  return typeof piece === 'object' && piece !== null && !(piece instanceof Uint8Array) && typeof (piece as Partial<Hole>).hole === 'number';
}

/** Static abilities of a driver (glance_store's capability bit masks, plus what snapstore plans with). */
export interface StoreCapabilities {
  readAccess: boolean;
  writeAccess: boolean;
  /** `get` honours `offset`/`length` without reading what precedes them. */
  readRandom: boolean;
  /** Stored images can be the parent of copy-on-write clones in the same backend (RBD snapshots). */
  canClone: boolean;
  /** Zero blocks of the input take no space in the backend. */
  thinProvisioning: boolean;
}

export interface Store {
  /** Driver name: `rbd`, `file`. */
  readonly kind: string;
  /** URL schemes whose locations this driver reads, e.g. `['rbd']`, `['file', 'filesystem']`. */
  readonly schemes: readonly string[];
  readonly capabilities: StoreCapabilities;

  /**
   * Stores `data` under `imageId`. With `size`, the stream must yield exactly that many bytes (else
   * SizeMismatch); without it, any length is accepted. The checksums cover every byte, zeros included
   * (from an announced size of 64 MiB on they are computed in two worker threads, in parallel with the I/O).
   * Any failure — the source erroring, a size mismatch, an abort, a backend error — leaves nothing behind.
   * @throws StoreExists when `imageId` is already stored; InvalidImageId when it cannot name an image.
   */
  add(imageId: string, data: StoreSource, size?: number, options?: AddOptions): Promise<AddResult>;

  /**
   * A stream of the image's bytes (or of the range asked for).
   * @throws StoreNotFound, BadLocation (malformed or not this driver's), ForeignLocation, InvalidRange.
   */
  get(location: string, options?: GetOptions): Promise<Readable>;

  /** @throws StoreNotFound, BadLocation, ForeignLocation. */
  getSize(location: string): Promise<number>;

  /**
   * Removes the image (and its pending mark). @throws StoreNotFound when there is nothing to delete; StoreInUse when something
   * depends on it (RBD: clones of its snapshot).
   */
  delete(location: string): Promise<void>;

  /** The location `imageId` has (or would have) in this store. @throws InvalidImageId. */
  locationOf(imageId: string): Promise<string>;

  /** Whether anything is stored under `imageId`, finished or not (a pending mark counts). */
  exists(imageId: string): Promise<boolean>;

  /**
   * Marks `imageId` as unfinished work, replacing any earlier mark; `marker` is the caller's opaque text
   * (the coordinator's JSON). @throws StoreNotFound when there is no such image.
   */
  markPending(imageId: string, marker: string): Promise<void>;

  /** Removes the mark; no mark (or no image) is fine. */
  clearPending(imageId: string): Promise<void>;

  /** The mark on `imageId`, or null (no mark or no image). */
  readPending(imageId: string): Promise<string | null>;

  /** Every marked image of this store (gc's scan); its cost follows the marked images, not the store. */
  listPending(options?: ListPendingOptions): Promise<PendingEntry[]>;

  /**
   * Removes an unfinished image and everything the driver keeps for it (its snapshots, temporary files, its
   * mark; RBD breaks advisory locks on it first, so a dead holder is blocklisted and its watch ends). Waits
   * out a dead process's watch (EBUSY) for up to ~45 s. Returns false when there was nothing to remove.
   */
  discard(imageId: string): Promise<boolean>;

  /** Present when `capabilities.canClone`: what the direct (clone) path needs. */
  readonly clones?: CloneTarget;

  /** Present when the store can make an image from one of its own inside its backend (incremental snapshots). */
  readonly incremental?: IncrementalTarget;

  /** Releases connections and handles the driver owns. Safe to call twice. */
  close(): Promise<void>;
}

interface ErrorOptions {
  cause?: unknown;
  context?: ErrorContext;
}

/** Any error a Store throws; `code` tells which. Used as-is for backend errors without a closer class. */
export class StoreError extends SnapstoreError {}

export class StoreNotFound extends StoreError {
  constructor(message: string, options: ErrorOptions = {}) {
    super('NOT_FOUND', message, options);
  }
}

export class StoreExists extends StoreError {
  constructor(message: string, options: ErrorOptions = {}) {
    super('EXISTS', message, options);
  }
}

/** The image cannot be deleted or changed because something uses it (clone children, watchers). */
export class StoreInUse extends StoreError {
  constructor(message: string, options: ErrorOptions = {}) {
    super('IN_USE', message, options);
  }
}

/** A location string that is malformed or that this driver does not serve. Never echoes credentials. */
export class BadLocation extends StoreError {
  constructor(message: string, options: ErrorOptions = {}) {
    super('BAD_LOCATION', message, options);
  }
}

/** A well-formed location that names another cluster (its fsid is not the one this store is connected to). */
export class ForeignLocation extends StoreError {
  constructor(message: string, options: ErrorOptions = {}) {
    super('FOREIGN_LOCATION', message, options);
  }
}

/** An image id that cannot name an image in any backend (empty, `/`, `..`, control characters, …). */
export class InvalidImageId extends StoreError {
  constructor(message: string, options: ErrorOptions = {}) {
    super('INVALID_IMAGE_ID', message, options);
  }
}

export class StorePermission extends StoreError {
  constructor(message: string, options: ErrorOptions = {}) {
    super('PERMISSION', message, options);
  }
}

/** The stream was shorter or longer than the size announced to `add`. */
export class SizeMismatch extends StoreError {
  constructor(message: string, options: ErrorOptions = {}) {
    super('SIZE_MISMATCH', message, options);
  }
}

export class StoreFull extends StoreError {
  constructor(message: string, options: ErrorOptions = {}) {
    super('STORE_FULL', message, options);
  }
}

/** The backend cannot be reached or used at all (connection, timeout, native addon missing). */
export class StoreUnavailable extends StoreError {
  constructor(message: string, options: ErrorOptions = {}) {
    super('STORE_UNAVAILABLE', message, options);
  }
}

export class StoreAborted extends StoreError {
  constructor(message: string, options: ErrorOptions = {}) {
    super('CANCELLED', message, options);
  }
}

/** `get` with an offset past the end, or a negative / non-integer offset or length. */
export class InvalidRange extends StoreError {
  constructor(message: string, options: ErrorOptions = {}) {
    super('INVALID_RANGE', message, options);
  }
}

export class StoreClosed extends StoreError {
  constructor(message: string, options: ErrorOptions = {}) {
    super('CLOSED', message, options);
  }
}
