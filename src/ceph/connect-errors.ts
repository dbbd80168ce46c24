// Why a connection to Ceph failed, in the operator's words. librados reports every connect failure as a bare
// errno from rados_connect; which mistake it stands for follows from the errno, the call, and what snapstore
// already checked itself (conf.ts: ceph.conf readable, a keyring found, the key well-formed). Measured on
// Ceph 16.2 (test/ceph/connect-errors.test.ts):
//   rados_conf_read_file, any errno  ceph.conf unusable (conf.ts reads it first, so rare)
//   rados_connect EACCES/EPERM       wrong key, or unknown user: cephx tells a client no more than that
//   rados_connect EINVAL             an inline key that does not decode (conf.ts catches it first), or a
//                                    `mon host` that does not parse or resolve
//   rados_connect EIO                a keyring librados cannot parse
//   rados_connect ENOENT             no keyring found (conf.ts catches it first), or no `mon host` at all
//   rados_connect ETIMEDOUT          no monitor answered within the connect timeout
// Messages name the user, the files and the command to check; never the key (SnapstoreError redacts cephx
// keys too, but nothing here ever reads one into a message).
import { constants as os } from 'node:os';
import { SnapstoreError, type ErrorContext } from '../errors.js';

/** Where the key for a connection came from: a keyring file, a `keyfile`, or an inline `key` option. */
export type KeySource =
  | { kind: 'keyring'; path: string }
  | { kind: 'keyfile'; path: string }
  | { kind: 'option'; section: string }
  | null;

/** What a connect failure is explained with. */
export interface ConnectFacts {
  user: string;
  confPath: string;
  key: KeySource;
  /** `mon host` as ceph.conf gives it for the user, when it does. */
  monHost: string | undefined;
  /** The connect timeout in whole seconds, as librados applies it. */
  timeoutSeconds: number;
}

function contextOf(f: ConnectFacts, extra: ErrorContext = {}): ErrorContext {
  return {
    user: `client.${f.user}`,
    confPath: f.confPath,
    ...(f.key && f.key.kind !== 'option' ? { keyring: f.key.path } : {}),
    ...(f.monHost !== undefined ? { monHost: f.monHost } : {}),
    ...extra,
  };
}

/** What a Ceph connection error carries besides its message. */
export interface CephErrorDetails {
  /** What to run or change to fix it (also `context.fix`, so `--json` shows it). */
  fix: string;
  context?: ErrorContext;
  cause?: unknown;
}

/** ceph.conf cannot be used: missing, unreadable, no monitors, monitor addresses that do not parse: exit 2. */
export class CephConfigError extends SnapstoreError {
  readonly fix: string | undefined;
  constructor(message: string, context: ErrorContext = {}, cause?: unknown) {
    super('CEPH_CONFIG', message, { context, cause });
    this.fix = typeof context.fix === 'string' ? context.fix : undefined;
  }
}

/** Ceph refused the credentials, or snapstore found them unusable before asking (malformed key, no
 *  keyring, no key for the user): exit 2. */
export class CephAuthError extends SnapstoreError {
  readonly fix: string;
  constructor(message: string, details: CephErrorDetails) {
    super('CEPH_AUTH', message, { context: { ...details.context, fix: details.fix }, cause: details.cause });
    this.fix = details.fix;
  }
}

/** No monitor answered within the connect timeout: exit 1 (it may work later, or from another host). */
export class CephUnreachable extends SnapstoreError {
  readonly fix: string;
  constructor(message: string, details: CephErrorDetails) {
    super('CEPH_UNREACHABLE', message, { context: { ...details.context, fix: details.fix }, cause: details.cause });
    this.fix = details.fix;
  }
}

/** `client.nova (ceph.conf X, keyring Y)`: who connected with what. */
function describeConnection(f: ConnectFacts): string {
  const key =
    f.key === null
      ? ''
      : f.key.kind === 'option'
        ? `, key from the \`key\` option in [${f.key.section}] of ${f.confPath}`
        : `, ${f.key.kind} ${f.key.path}`;
  return `client.${f.user} (ceph.conf ${f.confPath}${key})`;
}

/** Run as client.<user>: reproduces the failure outside snapstore. */
function statusCommand(f: ConnectFacts): string {
  return `ceph -c ${f.confPath} --id ${f.user} -s`;
}

function keyPlace(f: ConnectFacts): string {
  if (f.key === null) return 'its key';
  if (f.key.kind === 'option') return `the \`key\` option in [${f.key.section}] of ${f.confPath}`;
  return `the key in ${f.key.path}`;
}

/** Wrong key or unknown user (EACCES at rados_connect). */
function refused(f: ConnectFacts, cause: unknown): CephAuthError {
  return new CephAuthError(
    `Ceph refused the credentials of ${describeConnection(f)}: ${keyPlace(f)} is not client.${f.user}'s current key ` +
      `(rotated with \`ceph auth get-or-create\` on another host, or copied from another user), or client.${f.user} ` +
      `does not exist in this cluster. Check with \`ceph -c ${f.confPath} auth get client.${f.user}\` as a Ceph admin ` +
      `(is the user there, is it the same key?), and \`${statusCommand(f)}\``,
    {
      fix: `compare ${keyPlace(f)} with \`ceph -c ${f.confPath} auth get client.${f.user}\` (as a Ceph admin); create the user or copy its current key`,
      context: contextOf(f, { reason: 'key refused or unknown user' }),
      cause,
    },
  );
}

/** No monitor answered (ETIMEDOUT at rados_connect). */
function unreachable(f: ConnectFacts, cause: unknown): CephUnreachable {
  const mon = f.monHost === undefined ? 'the monitors ceph.conf names' : `mon host ${f.monHost}`;
  return new CephUnreachable(
    `no Ceph monitor answered ${describeConnection(f)} within ${f.timeoutSeconds} s (${mon}): the monitors are down, ` +
      `the address is stale (an old deployment?), or a firewall is in the way. Check with \`${statusCommand(f)}\``,
    {
      fix: `check that a monitor listens at ${f.monHost ?? 'the `mon host` of ceph.conf'} and that this host reaches it: ${statusCommand(f)}`,
      context: contextOf(f, { reason: 'no monitor answered', timeoutSeconds: f.timeoutSeconds }),
      cause,
    },
  );
}

function confError(f: ConnectFacts, message: string, fix: string, cause: unknown): CephConfigError {
  return new CephConfigError(message, contextOf(f, { fix }), cause);
}

/** Whatever `err` is, the errno and C call ceph-rbd-napi reported with it. */
export interface NativeFailure {
  errno: number;
  call: string;
}

/**
 * The catalog error a failed connect stands for: CephAuthError, CephUnreachable or CephConfigError. `failure`
 * is the errno and C call ceph-rbd-napi reported (null when `err` is not a native error: returned as is, as
 * are errnos this table does not explain).
 */
export function connectFailure(err: unknown, failure: NativeFailure | null, f: ConnectFacts): unknown {
  if (!failure) return err;
  const { errno, call } = failure;
  const E = os.errno;
  if (call === 'rados_conf_read_file') {
    return confError(f, `librados cannot read ${f.confPath} for client.${f.user}`, `check that ${f.confPath} is a readable ceph.conf`, err);
  }
  if (call !== 'rados_connect') return err;
  if (errno === E.EACCES || errno === E.EPERM) return refused(f, err);
  if (errno === E.ETIMEDOUT || errno === E.ENOTCONN || errno === E.ECONNREFUSED) return unreachable(f, err);
  if (errno === E.EIO && f.key && f.key.kind !== 'option') {
    return new CephAuthError(`librados cannot parse the ${f.key.kind} ${f.key.path} of ${describeConnection(f)}`, {
      fix: `write ${f.key.path} again from \`ceph -c ${f.confPath} auth get client.${f.user}\` (as a Ceph admin)`,
      context: contextOf(f, { reason: 'keyring unparsable' }),
      cause: err,
    });
  }
  if (errno === E.ENOENT && f.monHost === undefined) {
    return confError(
      f,
      `${f.confPath} names no monitors for client.${f.user} (no \`mon host\`, and no DNS SRV record for ceph-mon)`,
      `add \`mon host = <addresses of the monitors>\` to [global] of ${f.confPath}`,
      err,
    );
  }
  if (errno === E.ENOENT) {
    return new CephAuthError(`librados found no key for ${describeConnection(f)}`, {
      fix: `add "[client.${f.user}] keyring = /path/to/ceph.client.${f.user}.keyring" to ${f.confPath}`,
      context: contextOf(f, { reason: 'no key found' }),
      cause: err,
    });
  }
  if (errno === E.EINVAL) {
    // conf.ts has checked that the key decodes; what is left for EINVAL is the monitor addresses.
    return confError(
      f,
      `librados cannot use the monitor addresses for ${describeConnection(f)}: mon host \`${f.monHost ?? ''}\` does not parse or does not resolve. Check with \`${statusCommand(f)}\``,
      `correct \`mon host\` in ${f.confPath} (the addresses \`ceph mon dump\` lists)`,
      err,
    );
  }
  return err;
}

/** Whether `err` is one of the connection errors above (CEPH_AUTH, CEPH_UNREACHABLE, CEPH_CONFIG): the
 *  operator's configuration or network, which store and coordinator code pass on unchanged. */
export function isCephConnectionError(err: unknown): err is CephAuthError | CephUnreachable | CephConfigError {
  return err instanceof CephAuthError || err instanceof CephUnreachable || err instanceof CephConfigError;
}
