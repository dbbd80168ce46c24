// CephCluster: one connection to one Ceph cluster, as a cephx user, with cached pool handles. It loads
// ceph-rbd-napi lazily (nothing that only uses files ever loads it) and turns "the addon is not there" into
// one typed error. No policy: drivers and the coordinator decide what to do with the handles.
import type * as Native from 'ceph-rbd-napi';
import { SnapstoreError } from '../errors.js';
import { cephOption, findKeyring, keySource, readCephConf } from './conf.js';
import { connectFailure, type ConnectFacts } from './connect-errors.js';

export type { Cluster as NativeCluster, Image, ImageStat, Ioctx } from 'ceph-rbd-napi';

const BUILD_HINT =
  'snapstore needs the ceph-rbd-napi addon for RBD: install librbd-dev and librados-dev, then run `npm run build:native`';

/** The native addon (or librbd/librados) cannot be loaded. The message says how to fix it. */
export class CephUnavailable extends SnapstoreError {
  constructor(message: string, cause?: unknown) {
    super('NATIVE_UNAVAILABLE', message, { cause });
  }
}

/** Work asked of a CephCluster after close(). */
export class CephClosed extends SnapstoreError {
  constructor(message: string) {
    super('CLOSED', message);
  }
}

type NativeModule = typeof Native;
let nativeModule: Promise<NativeModule> | null = null;

/** Imports ceph-rbd-napi once. @throws CephUnavailable when the package or its compiled addon is missing. */
export function loadNative(): Promise<NativeModule> {
  // The package imports without loading the compiled addon; a missing build surfaces at connect.
  nativeModule ??= import('ceph-rbd-napi').catch((err: unknown) => {
    nativeModule = null;
    throw new CephUnavailable(`${BUILD_HINT} (${err instanceof Error ? err.message : String(err)})`, err);
  });
  return nativeModule;
}

/**
 * After a big operation (a copy, a flatten): gives the memory glibc keeps in librados' per-thread malloc
 * arenas back to the kernel (ceph-rbd-napi's trimMemory), so a long-running process's peak RSS stays at one
 * run's instead of creeping up run after run (bench/snapshot.ts). Does nothing when the addon was never loaded.
 */
export async function releaseMemory(): Promise<void> {
  if (!nativeModule) return;
  try {
    await (await nativeModule).trimMemory();
  } catch {
    // Only memory is at stake.
  }
}

function asUnavailable(err: unknown): unknown {
  if ((err as { code?: unknown })?.code === 'NATIVE_UNAVAILABLE' && !(err instanceof CephUnavailable)) {
    return new CephUnavailable(`${BUILD_HINT}: ${(err as Error).message}`, err);
  }
  return err;
}

export interface CephConnectOptions {
  /** Path of ceph.conf. */
  confPath: string;
  /** cephx id without `client.` (default `admin`). */
  user?: string;
  /** Keyring path; by default the one ceph.conf names for `client.<user>`. */
  keyring?: string;
  /** Bounds connecting only (client_mount_timeout; default 10 s). */
  timeoutMs?: number;
  /**
   * Bounds each RADOS operation (rados_osd_op_timeout and rados_mon_op_timeout). Default: what ceph.conf
   * sets for the user (`rados_osd_op_timeout`), else OP_TIMEOUT_MS. Kept apart from the connect timeout
   * (nova's rbd_connect_timeout is often 5 s): librados resends an op across an OSD failover or a mon
   * election, which takes longer than that.
   */
  opTimeoutMs?: number;
  /**
   * Ceph options snapstore sets for this connection unless ceph.conf sets them for the user ([client.<user>],
   * [client] or [global]); default CEPH_DEFAULTS.
   */
  defaults?: Record<string, string | number>;
}

/** Default bound of one RADOS op: rides out an OSD restart (osd_heartbeat_grace 20 s + detection) and a mon election, not a dead cluster. */
export const OP_TIMEOUT_MS = 300_000;

/** The op timeout a connection uses: the caller's, else ceph.conf's rados_osd_op_timeout (seconds), else OP_TIMEOUT_MS. */
function opTimeout(conf: ReturnType<typeof readCephConf>, user: string, given: number | undefined): number {
  if (given !== undefined) return given;
  const fromConf = Number.parseFloat(cephOption(conf, user, 'rados_osd_op_timeout')?.value ?? '');
  return Number.isFinite(fromConf) && fromConf >= 0 ? fromConf * 1000 : OP_TIMEOUT_MS;
}

/**
 * What snapstore's connections set unless the operator's ceph.conf says otherwise: nothing, so snapstore is
 * never slower than Ceph's own tools with the same ceph.conf. (It used to lower rbd_concurrent_management_ops
 * to 4 to save flatten memory, which made a flatten of a disk without an object map ~40% slower than
 * `rbd flatten`; issue 20.) Set options for the user in ceph.conf (`[client.<user>]`), or pass `defaults`.
 */
export const CEPH_DEFAULTS: Readonly<Record<string, string | number>> = {};

export class CephCluster {
  private readonly pools = new Map<string, Promise<Native.Ioctx>>();
  private closing: Promise<void> | null = null;

  private constructor(
    /** The native connection, for calls this class does not wrap. */
    readonly native: Native.Cluster,
    readonly confPath: string,
    readonly user: string,
  ) {}

  /**
   * Connects as `client.<user>`. Checks first that ceph.conf is readable, that a keyring is found for the
   * user and that the key is well-formed, so those mistakes are reported by name; what librados refuses is
   * mapped by errno and call (connect-errors.ts).
   * @throws CephAuthError (CEPH_AUTH: malformed, wrong or missing key, unknown user), CephUnreachable
   *   (CEPH_UNREACHABLE: no monitor answered in time), CephConfigError (CEPH_CONFIG), CephUnavailable; other
   *   ceph-rbd-napi errors as they come.
   */
  static async connect(options: CephConnectOptions): Promise<CephCluster> {
    const user = options.user ?? 'admin';
    const conf = readCephConf(options.confPath);
    const keyring = findKeyring(conf, options.confPath, user, options.keyring);
    const facts: ConnectFacts = {
      user,
      confPath: options.confPath,
      key: keySource(conf, options.confPath, user, keyring),
      monHost: cephOption(conf, user, 'mon host')?.value,
      // As ceph-rbd-napi hands it to librados: whole seconds.
      timeoutSeconds: Math.max(1, Math.ceil((options.timeoutMs ?? 10_000) / 1000)),
    };
    const config = Object.fromEntries(
      Object.entries(options.defaults ?? CEPH_DEFAULTS).filter(([key]) => cephOption(conf, user, key) === undefined),
    );
    const native = await loadNative();
    try {
      const cluster = await native.Cluster.connect({
        confPath: options.confPath,
        user,
        keyring: options.keyring ?? keyring ?? undefined,
        timeoutMs: options.timeoutMs,
        opTimeoutMs: opTimeout(conf, user, options.opTimeoutMs),
        config,
      });
      return new CephCluster(cluster, options.confPath, user);
    } catch (err) {
      throw connectFailure(asUnavailable(err), err instanceof native.RbdError ? err : null, facts);
    }
  }

  /** A Ceph option's value as this connection uses it (rados_conf_get). */
  confGet(key: string): string {
    return this.native.confGet(key);
  }

  /** The cluster's fsid (what `rbd://<fsid>/…` locations name). */
  get fsid(): string {
    return this.native.fsid;
  }

  get closed(): boolean {
    return this.closing !== null;
  }

  /**
   * An I/O context on `pool` (and RADOS namespace), opened once and shared; closed by close().
   * @throws ceph-rbd-napi's NotFoundError when the pool does not exist.
   */
  pool(name: string, namespace = ''): Promise<Native.Ioctx> {
    if (this.closing) return Promise.reject(new CephClosed(`the connection to cluster ${this.fsid} is closed`));
    const key = `${name}\u0000${namespace}`;
    let ioctx = this.pools.get(key);
    if (!ioctx) {
      ioctx = this.native.openIoctx(name, namespace || undefined);
      this.pools.set(key, ioctx);
      ioctx.catch(() => this.pools.delete(key));
    }
    return ioctx;
  }

  /** Closes the pool handles, then the connection (each waits for its in-flight calls). Safe to call twice. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const handles = await Promise.allSettled([...this.pools.values()]);
      this.pools.clear();
      await Promise.allSettled(handles.map((h) => (h.status === 'fulfilled' ? h.value.close() : undefined)));
      await this.native.close();
    })();
    return this.closing;
  }
}
