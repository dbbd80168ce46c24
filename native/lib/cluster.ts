// Cluster: one connection (a rados_t). Connecting reads ceph.conf and sets the timeouts and options in a
// worker thread; the fsid is read once at connect.
import { load, type NativeCluster } from './binding.js';
import { checkName, spec } from './checks.js';
import { invalid, translate } from './errors.js';
import { newIoctx, type Ioctx } from './ioctx.js';
import { INTERNAL, Lifecycle } from './lifecycle.js';
import { sendMgrCommand, type MgrCommandOptions, type MgrCommandResult } from './mgr.js';
import type { ConnectOptions } from './types.js';

const OPTION_NAME = /^[A-Za-z0-9_ -]+$/;
/** ConnectOptions.opTimeoutMs's default: rides out an OSD failover or a mon election, not a dead cluster. */
export const DEFAULT_OP_TIMEOUT_MS = 300_000;

/** ConnectOptions.config as rados_conf_set pairs, checked. */
function confOptions(config: unknown, user: string): Array<[string, string]> {
  const call = 'rados_conf_set';
  const object = `client.${user}`;
  if (config === undefined) return [];
  if (!config || typeof config !== 'object') throw invalid(call, object, 'config must be an object of option names to values');
  const options: Array<[string, string]> = [];
  for (const [key, value] of Object.entries(config)) {
    if (!OPTION_NAME.test(key)) throw invalid(call, object, `config option name ${JSON.stringify(key)} is not an option name`);
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
      throw invalid(call, object, `config option ${key} must be a string, number or boolean`);
    }
    options.push([key, String(value)]);
  }
  return options;
}

let internals: (c: Cluster) => { native: NativeCluster; life: Lifecycle };

/** For rados.ts: the native handle and lifecycle its client calls run on (not exported from the package). */
export function clusterInternals(c: Cluster): { native: NativeCluster; life: Lifecycle } {
  return internals(c);
}

/** A connection to one Ceph cluster (a `rados_t`). */
export class Cluster {
  readonly #native: NativeCluster;
  readonly #life = new Lifecycle();
  readonly #fsid: string;
  readonly #user: string;

  static {
    internals = (c) => ({ native: c.#native, life: c.#life });
  }

  /** Use {@link Cluster.connect}. */
  private constructor(token: typeof INTERNAL, native: NativeCluster, user: string) {
    if (token !== INTERNAL) throw new TypeError('use Cluster.connect()');
    this.#native = native;
    this.#fsid = native.fsid();
    this.#user = user;
  }

  /**
   * Connects. Implements rados_create2 (cluster "ceph", name "client.<user>"), rados_conf_read_file,
   * rados_conf_set (keyring, client_mount_timeout from timeoutMs, rados_osd_op_timeout and
   * rados_mon_op_timeout from opTimeoutMs, then `config`), rados_connect and rados_cluster_fsid, in a
   * worker thread.
   * @throws {TimeoutError} no monitor answered within timeoutMs
   * @throws {PermissionError} cephx rejected the key
   * @throws {NotFoundError} ceph.conf or the keyring does not exist
   * @throws {NativeUnavailableError} the addon or the Ceph libraries cannot be loaded
   */
  static async connect(opts: ConnectOptions): Promise<Cluster> {
    const call = 'rados_connect';
    if (!opts || typeof opts !== 'object') throw invalid(call, undefined, 'options are required');
    const { confPath, keyring } = opts;
    const user = String(opts.user ?? 'admin').replace(/^client\./, '');
    const timeoutMs = opts.timeoutMs ?? 10000;
    checkName(confPath, 'confPath', 'rados_conf_read_file', undefined);
    checkName(user, 'user', call, undefined);
    if (keyring !== undefined) checkName(keyring, 'keyring', 'rados_conf_set', `client.${user}`);
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw invalid(call, `client.${user}`, 'timeoutMs must be positive');
    // Ceph takes these timeouts in whole seconds.
    const seconds = Math.max(1, Math.ceil(timeoutMs / 1000));
    const opTimeoutMs = opts.opTimeoutMs ?? DEFAULT_OP_TIMEOUT_MS;
    if (!Number.isFinite(opTimeoutMs) || opTimeoutMs < 0) throw invalid(call, `client.${user}`, 'opTimeoutMs must be zero or positive');
    const opSeconds = String(Math.ceil(opTimeoutMs / 1000));
    // Before `config`, so an explicit rados_osd_op_timeout there still wins.
    const options: Array<[string, string]> = [
      ['rados_osd_op_timeout', opSeconds],
      ['rados_mon_op_timeout', opSeconds],
      ...confOptions(opts.config, user),
    ];
    const b = load();
    try {
      const native = await b.NativeCluster.connect(confPath, user, keyring, seconds, options);
      return new Cluster(INTERNAL, native, user);
    } catch (err) {
      throw translate(err);
    }
  }

  /** The cluster fsid, read once at connect (rados_cluster_fsid). */
  get fsid(): string {
    return this.#fsid;
  }
  /** The cephx id connected as, without "client.". */
  get user(): string {
    return this.#user;
  }
  /** True once close() was called. */
  get closed(): boolean {
    return this.#life.closed;
  }

  /**
   * The value of a Ceph option as this connection uses it (ceph.conf, then what connect set). Implements
   * rados_conf_get.
   * @throws {NotFoundError} no such option
   */
  confGet(key: string): string {
    checkName(key, 'key', 'rados_conf_get', undefined);
    return this.#life.runSync('rados_conf_get', `cluster ${this.#fsid}`, () => this.#native.confGet(key));
  }

  /** Pool names. Implements rados_pool_list. */
  listPools(): Promise<string[]> {
    return this.#life.run('rados_pool_list', `cluster ${this.#fsid}`, () => this.#native.listPools());
  }

  /**
   * Opens an I/O context on a pool, optionally in a RADOS namespace. Implements rados_ioctx_create and
   * rados_ioctx_set_namespace.
   * @throws {NotFoundError} no such pool
   */
  openIoctx(pool: string, namespace = ''): Promise<Ioctx> {
    const call = 'rados_ioctx_create';
    return this.#life.run(call, spec(pool, namespace), async () => {
      checkName(pool, 'pool', call, String(pool));
      if (typeof namespace !== 'string') throw invalid(call, pool, 'namespace must be a string');
      const native = await this.#native.openIoctx(pool, namespace);
      return newIoctx(this, native, pool, namespace);
    });
  }

  /**
   * Sends a command to the active ceph-mgr (an object is sent as its JSON), e.g.
   * `{ prefix: 'rbd task add flatten', image_spec: 'images/img' }`. Implements rados_mgr_command, in a
   * worker thread; see MgrCommandOptions.timeoutMs for the bound.
   * @throws {PermissionError} no mgr cap for it
   * @throws {TimeoutError} no mgr answered in time
   */
  mgrCommand(cmd: object | string, input?: Buffer, opts?: MgrCommandOptions): Promise<MgrCommandResult> {
    return this.#life.run('rados_mgr_command', `cluster ${this.#fsid}`, () => sendMgrCommand(load(), this.#native, cmd, input, opts));
  }

  /**
   * Sends a command to the monitors (an object is sent as its JSON), e.g. `{ prefix: 'status' }`.
   * Implements rados_mon_command, in a worker thread, bounded like mgrCommand.
   */
  monCommand(cmd: object | string, input?: Buffer, opts?: MgrCommandOptions): Promise<MgrCommandResult> {
    return this.#life.run('rados_mon_command', `cluster ${this.#fsid}`, () => sendMgrCommand(load(), this.#native, cmd, input, opts, 'mon'));
  }

  /**
   * Idempotent. Waits for this cluster's in-flight calls, then drops the connection's reference.
   * rados_shutdown runs (in a worker) only once every Ioctx and Image opened from it is closed too, so
   * those keep working after this resolves.
   */
  close(): Promise<void> {
    return this.#life.close(() => this.#native.close());
  }
}
