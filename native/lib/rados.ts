// Plain RADOS object calls on an Ioctx (compound write ops with omap set/remove/compare, omap reads,
// object removal) and the client calls a lease keeper needs on a Cluster (blocklist, this client's
// address and instance id). What a journal kept in an object's omap needs — the way Ceph keeps
// rbd_directory or rbd_trash. The C++ glue is ../src/rados.cc; errors go through the one errno table.
import { load, type NativeCluster, type NativeIoctx } from './binding.js';
import { checkName, checkUint, spec } from './checks.js';
import { clusterInternals, type Cluster } from './cluster.js';
import { Errno, invalid, RbdError } from './errors.js';
import { ioctxInternals, type Ioctx } from './ioctx.js';

/** A value written to or compared in an omap: bytes, or text stored as UTF-8. */
export type OmapValue = string | Buffer;

/** One step of {@link writeOp}; the steps of one call apply atomically, in order, or none does. */
export type WriteStep =
  /** rados_write_op_create: exclusive fails with ExistsError when the object exists. */
  | { op: 'create'; exclusive: boolean }
  /** rados_write_op_assert_exists: NotFoundError when the object does not exist. */
  | { op: 'assertExists' }
  /** rados_write_op_remove: removes the object (and its omap). */
  | { op: 'remove' }
  /** rados_write_op_omap_set2 */
  | { op: 'omapSet'; entries: Readonly<Record<string, OmapValue>> }
  /** rados_write_op_omap_rm_keys2 (absent keys are fine). */
  | { op: 'omapRm'; keys: readonly string[] }
  /**
   * rados_write_op_omap_cmp2 with LIBRADOS_CMPXATTR_OP_EQ, per key: the op fails (nothing applied,
   * {@link isCompareFailed}) unless each key's stored value equals the given one. A missing key compares
   * as the empty value, so `''` asserts that the key is absent.
   */
  | { op: 'omapCmp'; equals: Readonly<Record<string, OmapValue>> };

interface RadosBinding {
  radosWriteOp(io: NativeIoctx, oid: string, steps: unknown[]): Promise<void>;
  radosOmapGet(io: NativeIoctx, oid: string, keys: string[]): Promise<NativeEntries>;
  radosOmapList(io: NativeIoctx, oid: string, startAfter: string, prefix: string, max: number): Promise<NativeEntries>;
  radosBlocklistAdd(cluster: NativeCluster, address: string, expireSeconds: number): Promise<void>;
  radosClientAddress(cluster: NativeCluster): Promise<string>;
  radosInstanceId(cluster: NativeCluster): bigint;
}

interface NativeEntries {
  entries: Array<[string, Buffer]>;
  more: boolean;
}

function binding(): RadosBinding {
  return load() as unknown as RadosBinding;
}

function objectSpec(io: Ioctx, oid: string): string {
  return spec(io.pool, io.namespace, oid);
}

function encodeStep(step: WriteStep, call: string, object: string): unknown[] {
  switch (step.op) {
    case 'create':
      return ['create', Boolean(step.exclusive)];
    case 'assertExists':
    case 'remove':
      return [step.op];
    case 'omapSet':
    case 'omapCmp': {
      const entries = Object.entries(step.op === 'omapSet' ? step.entries : step.equals);
      for (const [k] of entries) checkName(k, 'omap key', call, object);
      return [step.op, entries.map(([k]) => k), entries.map(([, v]) => v)];
    }
    case 'omapRm':
      for (const k of step.keys) checkName(k, 'omap key', call, object);
      return ['omapRm', [...step.keys]];
    default:
      throw invalid(call, object, `unknown write step ${JSON.stringify((step as { op?: unknown }).op)}`);
  }
}

/**
 * Applies `steps` to object `oid` as one compound op. Implements rados_create_write_op, the
 * rados_write_op_* calls of the steps and rados_write_op_operate2, in a worker thread.
 * @throws {RbdError} with errno ECANCELED when an omapCmp step did not match ({@link isCompareFailed})
 * @throws {ExistsError} create exclusive of an existing object
 * @throws {NotFoundError} assertExists / omapCmp / remove on a missing object
 */
export function writeOp(io: Ioctx, oid: string, steps: readonly WriteStep[]): Promise<void> {
  const call = 'rados_write_op_operate2';
  const object = objectSpec(io, oid);
  const { native, life } = ioctxInternals(io);
  return life.run(call, object, () => {
    checkName(oid, 'object name', call, object);
    if (!Array.isArray(steps) || steps.length === 0) throw invalid(call, object, 'steps must be a non-empty array');
    return binding().radosWriteOp(native, oid, steps.map((s) => encodeStep(s, call, object)));
  });
}

/** Whether `err` is a {@link writeOp} that failed because an omapCmp step did not match. */
export function isCompareFailed(err: unknown): boolean {
  return err instanceof RbdError && err.errno === Errno.ECANCELED && err.call === 'rados_write_op_operate2';
}

/** Removes object `oid`. Implements rados_write_op_remove. @throws {NotFoundError} no such object */
export function removeObject(io: Ioctx, oid: string): Promise<void> {
  return writeOp(io, oid, [{ op: 'remove' }]);
}

/**
 * The values of those `keys` that are present in `oid`'s omap. Implements
 * rados_read_op_omap_get_vals_by_keys2 and rados_read_op_operate.
 * @throws {NotFoundError} no such object
 */
export function omapGet(io: Ioctx, oid: string, keys: readonly string[]): Promise<Map<string, Buffer>> {
  const call = 'rados_read_op_operate';
  const object = objectSpec(io, oid);
  const { native, life } = ioctxInternals(io);
  return life.run(call, object, async () => {
    checkName(oid, 'object name', call, object);
    for (const k of keys) checkName(k, 'omap key', call, object);
    const got = await binding().radosOmapGet(native, oid, [...keys]);
    return new Map(got.entries);
  });
}

export interface OmapListOptions {
  /** List keys after this one (exclusive); default from the start. */
  startAfter?: string | undefined;
  /** Only keys starting with this. */
  prefix?: string | undefined;
  /** At most this many entries (default 1000, the OSD caps a page at osd_max_omap_entries_per_request). */
  max?: number | undefined;
}

/**
 * One page of `oid`'s omap in key order, and whether more follow. Implements
 * rados_read_op_omap_get_vals2 and rados_read_op_operate.
 * @throws {NotFoundError} no such object
 */
export function omapList(io: Ioctx, oid: string, opts: OmapListOptions = {}): Promise<{ entries: Map<string, Buffer>; more: boolean }> {
  const call = 'rados_read_op_operate';
  const object = objectSpec(io, oid);
  const { native, life } = ioctxInternals(io);
  const max = opts.max ?? 1000;
  return life.run(call, object, async () => {
    checkName(oid, 'object name', call, object);
    checkUint(max, 'max', call, object);
    const got = await binding().radosOmapList(native, oid, opts.startAfter ?? '', opts.prefix ?? '', max);
    return { entries: new Map(got.entries), more: got.more };
  });
}

/** Every entry of `oid`'s omap (with `prefix`), page by page. @throws {NotFoundError} no such object */
export async function omapListAll(io: Ioctx, oid: string, prefix?: string): Promise<Map<string, Buffer>> {
  const all = new Map<string, Buffer>();
  let startAfter: string | undefined;
  for (;;) {
    const page = await omapList(io, oid, { startAfter, prefix, max: 1000 });
    for (const [k, v] of page.entries) {
      all.set(k, v);
      startAfter = k;
    }
    if (!page.more || page.entries.size === 0) return all;
  }
}

/**
 * Blocklists a client address (as {@link clientAddress} gives it, or an entry of a lock's owners) for
 * `expireSeconds` (0: the cluster's mon_osd_blocklist_default_expire). The OSDs then refuse that client's
 * ops and drop its watches. Implements rados_blocklist_add.
 * @throws {PermissionError} the user may not blocklist (needs `mon 'profile rbd'` or `allow command "osd blocklist"`)
 */
export function blocklistAdd(cluster: Cluster, address: string, expireSeconds = 0): Promise<void> {
  const call = 'rados_blocklist_add';
  const { native, life } = clusterInternals(cluster);
  return life.run(call, address, () => {
    checkName(address, 'address', call, undefined);
    checkUint(expireSeconds, 'expireSeconds', call, address);
    return binding().radosBlocklistAdd(native, address, expireSeconds);
  });
}

/** This connection's address(es) as the cluster sees it, e.g. `[v2:10.0.0.1:0/1234,v1:…]`. Implements rados_getaddrs. */
export function clientAddress(cluster: Cluster): Promise<string> {
  const { native, life } = clusterInternals(cluster);
  return life.run('rados_getaddrs', `client.${cluster.user}`, () => binding().radosClientAddress(native));
}

/** This connection's global id (the `client.<id>` of its locks and watches). Implements rados_get_instance_id. */
export function instanceId(cluster: Cluster): bigint {
  const { native, life } = clusterInternals(cluster);
  return life.runSync('rados_get_instance_id', `client.${cluster.user}`, () => binding().radosInstanceId(native));
}
