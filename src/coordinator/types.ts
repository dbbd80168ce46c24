// The coordinator's public data shapes.

/** One thing `check` looked at, in words an operator can act on. */
export interface Reason {
  /** Stable identifier, e.g. `SAME_CLUSTER`, `TARGET_CAPS`, `CLONE_FORMAT`. */
  code: string;
  /** Whether this finding allows the direct path (informational findings are `ok`). */
  ok: boolean;
  message: string;
  /** What to run or change to make it ok, when there is such a thing. */
  fix?: string;
}

export interface Plan {
  method: 'direct' | 'copy';
  reasons: Reason[];
  /** Whether the next snapshot with `incremental` on will be incremental (see IncrementalCheck); absent when it cannot apply. */
  incremental?: IncrementalCheck;
  /** Whether an instant snapshot (`flatten: 'background'`) is possible, and why (not). */
  instant: InstantCheck;
  /**
   * Whether a linked snapshot (`flatten: 'never'`) is possible: each precondition with ok/NO and its fix
   * (`LINKED_*` codes; `LINKED_PARENT_CLEANUP` is a warning, ok either way). Absent for a file source.
   */
  linked?: { possible: boolean; reasons: Reason[] };
}

export interface IncrementalCheck {
  possible: boolean;
  /** The previous image the next snapshot would be made from. */
  from: string | null;
  /** The bytes it would read from the source: what changed since the common point, as of now. */
  bytesExpected: number | null;
  reason: string;
  /** Who flattens the new image inside the target before the changes go in (flattened before returning): ceph-mgr, or snapstore through its own host and why, with the fix when there is one. */
  flattenFirstBy?: { via: 'mgr' | 'snapstore'; reason: string; fix?: string };
}

export interface InstantCheck {
  possible: boolean;
  reason: string;
  /** What to change to make it possible, when there is such a thing. */
  fix?: string;
  /**
   * Who will flatten an instant snapshot: ceph-mgr's task queue (`mgr`), or snapstore's flattener because
   * the mgr refuses the store's user or does not answer; `fix` is the cap that lets the mgr do it.
   */
  flattenBy?: { via: 'mgr' | 'flattener'; reason: string; fix?: string };
}

export interface SnapshotOptions {
  /** An existing (queued) Glance image to fill, or the id of the image to create. Default: a new uuid. */
  imageId?: string;
  /** Name of the Glance image snapstore creates (when `imageId` is not given). */
  name?: string;
  /** `auto` (default) follows the plan; `direct` fails with MODE_NOT_POSSIBLE when the plan says copy. */
  mode?: 'auto' | 'direct' | 'copy';
  /**
   * `sync` (default): flatten before returning. `background`: return as soon as the clone and its `snap`
   * exist (an instant snapshot; needs clone format 2 and the direct path, else MODE_NOT_POSSIBLE) and leave
   * the flatten to a Flattener (`snapstore flattener`), queued in the clone's RBD metadata.
   */
  flatten?: 'sync' | 'background' | 'never';
  /**
   * `flatten: 'never'` only: clone depths past which the new image is flattened after all — in the
   * background past `soft` (default 4), before it is registered past `hard` (default 8), as ceph-csi does.
   */
  chainLimits?: { soft?: number; hard?: number };
  /**
   * Whether the copy path computes Glance's checksum (md5) and os_hash_value (sha512) as it copies:
   * `auto` (default) only when they would otherwise be missing, i.e. when the image is registered with a
   * Glance older than image API 2.17 (from 2.17 Glance computes them itself from the new location,
   * `do_secure_hash`, in the background); `inline` always; `off` never. Hashing costs CPU for every byte
   * of the disk, holes included (two worker threads, ~6 s per 4 GiB on a 2-core host), so it decides the
   * speed of a sparse copy. The direct path never hashes (like nova's direct snapshot).
   */
  checksums?: 'auto' | 'inline' | 'off';
  /**
   * Incremental snapshots on the copy path (another cluster, or a pool the direct path cannot clone into):
   * the disk keeps a snapshot as the common point with the image made from it, and the next snapshot into
   * the same store is made from that image inside the target cluster, reading only what changed since.
   * Off by default: the kept snapshot holds the disk's old blocks, and librbd refuses to remove a disk with
   * snapshots (prepareSourceRemoval removes them).
   */
  incremental?: boolean;
  /** How many common points a disk keeps per target store (default 1): older ones go once the new image is registered. */
  keepCommonPoints?: number;
  signal?: AbortSignal;
  onProgress?: (p: { phase: string; done: number; total: number }) => void;
}

export interface SnapshotResult {
  imageId: string;
  /** Where the image now lives, as a store location (`rbd://fsid/pool/id/snap`, `file:///dir/id`). */
  location: string;
  method: 'direct' | 'copy';
  /**
   * Why the copy path was taken (null when direct, or when copy was the only option asked for); with
   * `incremental`, also why a full copy was made although the disk had a common point with this store.
   */
  fallbackReason: string | null;
  /** An incremental snapshot: the image it was made from and the bytes read from the source; null otherwise. */
  incremental: { from: string; bytesSent: number } | null;
  /** With `incremental`: the source snapshot kept as the next snapshot's common point (`rbd://fsid/pool/image/snap`). */
  commonPoint?: string;
  sizeBytes: number;
  seconds: number;
  glance: { id: string; status: string } | null;
  /** The checksums the copy path computed (see SnapshotOptions.checksums); null when it computed none. */
  checksums: { checksum: string; multihash: string; hashAlgo: 'sha512' } | null;
  /**
   * `done`: the image stands alone. Background mode: `queued` — ceph-mgr's rbd_support task queue flattens
   * it (`flattenTask` is the task id); `pending` — snapstore's flattener must (`flattenerReason` says why the
   * mgr was not used).
   */
  flatten: 'done' | 'queued' | 'pending' | 'never';
  /**
   * Linked snapshots (`flatten: 'never'`): how many images the new image reads through (1: a clone of a
   * plain disk), and the limit it passed — `soft`: its flatten was queued (`flatten` queued/pending),
   * `hard`: it was flattened before it was registered (`flatten` done). `flatten: 'never'` when none.
   */
  chain?: { depth: number; limit: 'none' | 'soft' | 'hard' };
  /** The ceph-mgr task flattening the image (`ceph rbd task list`), when `flatten` is `queued`. */
  flattenTask?: string;
  /** Why the mgr does not flatten it, when `flatten` is `pending`. */
  flattenerReason?: string;
}

/** Something a killed run left behind. */
export interface Leftover {
  kind: 'source-snapshot' | 'clone' | 'target' | 'glance-image' | 'run-record' | 'probe-image' | 'trashed-disk';
  /** `rbd://fsid/pool/image[/snap]`, `file:///…`, `glance:<id>`, or `rbd://fsid/pool/image#<metadata key>`. */
  location: string;
  runId: string | null;
  /** `host:pid` of the process that created it, when recorded. */
  owner: string | null;
  startedAt: string | null;
}

export interface GcOptions {
  dryRun?: boolean;
  /**
   * For leftovers the run journal does not account for (pending targets, probes, records of older versions):
   * only those at least this old (default one hour). A run in the journal is judged by its lease instead, and
   * a run whose process still lives on this host is never touched.
   */
  olderThanMs?: number;
  /**
   * Also open every disk of the source pool for run records and `snapstore-<uuid>` snapshots of versions
   * before the journal (and trashed instant-snapshot sources). Costs one open per disk; default off.
   */
  scanImages?: boolean;
}

export interface GcReport {
  found: Leftover[];
  removed: Leftover[];
  dryRun: boolean;
  /**
   * Every leftover gc saw, with what it did and why: `removed`, `kept` (why: `lease valid until …`,
   * `owner alive (…)`, `younger than …`, …), `failed` (why: the error), or in a dry run `would remove`.
   */
  seen: Array<Leftover & { action: 'removed' | 'kept' | 'failed' | 'would remove'; why: string | null }>;
}
