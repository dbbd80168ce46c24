// mgrCommand: a command for a ceph-mgr module (rados_mgr_command), e.g. rbd_support's task queue
// (`{"prefix": "rbd task add flatten", "image_spec": "pool/image"}`, what `ceph rbd task add flatten` sends);
// monCommand the same for the monitors (rados_mon_command, e.g. `{"prefix": "status"}`, whose mgrmap says
// whether any mgr is active at all). The C++ glue is ../src/mgr.cc; it runs the command off the JS thread
// and bounds the wait.
import type { Binding, NativeCluster } from './binding.js';
import { invalid, RbdError, translate } from './errors.js';

export interface MgrCommandOptions {
  /**
   * How long to wait for the mgr's answer (default 10000). With no mgr running, or none answering, a
   * command would wait for one; past this it rejects with TimeoutError. librados also ends the wait at the
   * connection's rados_mon_op_timeout (ConnectOptions.timeoutMs), whichever comes first.
   */
  timeoutMs?: number;
}

export interface MgrCommandResult {
  /** The command's output (rbd_support answers JSON). */
  output: Buffer;
  /** The command's status text (often empty on success). */
  status: string;
}

/** The addon's mgrCommand export (src/mgr.cc): the one native function this module calls. */
interface MgrBinding {
  mgrCommand(cluster: NativeCluster, cmd: string, input: Buffer | undefined, timeoutMs: number): Promise<MgrCommandResult>;
  monCommand(cluster: NativeCluster, cmd: string, input: Buffer | undefined, timeoutMs: number): Promise<MgrCommandResult>;
}

/** The part of a native rejection only mgr commands carry: the mgr's status text. */
function statusOf(err: unknown): string {
  return typeof err === 'object' && err !== null && 'status' in err && typeof err.status === 'string' ? err.status : '';
}

/**
 * Sends `cmd` (an object is sent as its JSON) to the active mgr. The caller's guards (closed cluster,
 * in-flight tracking) wrap this in Cluster.mgrCommand.
 * @throws {PermissionError} the user's key has no mgr cap allowing the command (EACCES)
 * @throws {TimeoutError} no mgr answered within timeoutMs
 * @throws {RbdError} what the mgr module answered (its errno), with the module's status text in the message
 */
export async function sendMgrCommand(
  binding: Binding,
  native: NativeCluster,
  cmd: object | string,
  input: Buffer | undefined,
  opts: MgrCommandOptions | undefined,
  to: 'mgr' | 'mon' = 'mgr',
): Promise<MgrCommandResult> {
  const call = to === 'mgr' ? 'rados_mgr_command' : 'rados_mon_command';
  const text = typeof cmd === 'string' ? cmd : JSON.stringify(cmd);
  if (typeof text !== 'string' || text.length === 0) throw invalid(call, undefined, 'cmd must be a non-empty string or a JSON-serializable object');
  if (input !== undefined && !Buffer.isBuffer(input)) throw invalid(call, undefined, 'input must be a Buffer');
  const timeoutMs = opts?.timeoutMs ?? 10000;
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0 || timeoutMs > 0xffffffff) throw invalid(call, undefined, 'timeoutMs must be a positive integer');
  try {
    // The addon exports mgrCommand beside the classes (Binding lists those); see MgrBinding.
    const b = binding as Binding & MgrBinding;
    return await (to === 'mgr' ? b.mgrCommand(native, text, input, timeoutMs) : b.monCommand(native, text, input, timeoutMs));
  } catch (err) {
    const out = translate(err);
    const status = statusOf(err).trim();
    if (out instanceof RbdError && status) out.message = `${out.message}: ${status}`;
    throw out;
  }
}
