// Command-line grammar of `snapstore`. Parsing is strict: an unknown flag, a missing value or a stray
// argument is a UsageError (exit 2), never a guess.
import { parseArgs } from 'node:util';
import { minThresholdSeconds } from '../coordinator/journal/limits.js';
import { UsageError } from './output.js';

export const COMMANDS = ['snapshot', 'check', 'add', 'get', 'size', 'delete', 'gc', 'flattener'] as const;
export type CommandName = (typeof COMMANDS)[number];

export interface Invocation {
  command: CommandName;
  positionals: string[];
  configs: string[];
  json: boolean;
  debug: boolean;
  imageId?: string;
  name?: string;
  mode: 'auto' | 'direct' | 'copy';
  flatten: 'sync' | 'background' | 'never';
  chainSoft?: number;
  chainHard?: number;
  checksums: 'auto' | 'inline' | 'off';
  incremental: boolean;
  keepCommonPoints?: number;
  once: boolean;
  status: boolean;
  staleLockSeconds?: number;
  output?: string;
  size?: number;
  dryRun: boolean;
  olderThanSeconds?: number;
  scanImages: boolean;
  /** snapshot/check of several disks at one point in time (one Ceph group snapshot). */
  group: boolean;
}

export const USAGE = `usage: snapstore <command> [options]

commands:
  snapshot SOURCE   snapshot an instance disk or image into the configured store (+ Glance)
                    [--image-id ID] [--name NAME] [--mode auto|direct|copy]
                    [--flatten sync|background|never] [--chain-soft N] [--chain-hard N]
                    [--checksums auto|inline|off] [--incremental [--keep-common-points N]]
                    --flatten background: usable at once (clone format 2), flattened later by ceph-mgr's
                    task queue (rbd_support), or by a flattener when the mgr refuses or is silent
                    --flatten never: a linked snapshot, a clone of the disk's snapshot for good (clone
                    format 2; Ceph finishes deletes in either order; \`check\` lists what it needs);
                    flattened in the background past --chain-soft (default 4) images deep, before
                    registering past --chain-hard (default 8)
                    --checksums: whether a copy computes Glance's md5/sha512 (auto: only for a Glance
                    older than image API 2.17, which cannot compute them itself; costs CPU per byte)
                    --incremental: on the copy path, keep a snapshot of the disk as the common point
                    and make the next snapshot from this one's image, sending only what changed
                    (--keep-common-points: how many the disk keeps per store, default 1); with
                    --flatten background that image is usable at once and flattened later, as above
  check SOURCE      say whether a snapshot of SOURCE would clone (direct) or copy, and why, and whether an
                    --incremental one would send only what changed (from which image, how many bytes)
  snapshot SOURCE SOURCE... --group
                    the disks at one point in time (one Ceph group snapshot), each its own image, all or
                    nothing [--name NAME] [--mode auto|copy] [--checksums auto|inline|off]
  check SOURCE... --group
                    say which path each disk of a group snapshot would take, and why
  add FILE|-        store a file (or stdin) as a new image [--image-id ID] [--size BYTES]
  get LOCATION      write an image to stdout or -o FILE
  size LOCATION     print an image's size in bytes
  delete LOCATION   delete an image from the store
  gc                remove leftovers of killed snapshot runs [--dry-run] [--older-than SECONDS: for what the
                    run journal does not hold; at least two lease periods, default 3600] [--scan-images:
                    also open every disk and every image for records and marks of versions before the
                    journal and the pending indexes, and index what it finds]
  flattener [IMAGE_ID...]
                    flatten instant snapshots queued in the image pool (or only those images;
                    a linked snapshot named here is flattened too: detached on demand),
                    polling until SIGINT/SIGTERM [--once: flatten what is pending now, then exit]
                    [--status: show each queued flatten (ceph-mgr: queued, running %, failed) and exit]
                    [--stale-lock-seconds N: break a lock this old when its holder's death cannot be
                    proven (it ran on another host); at least two lease periods, default 3600]
                    [--scan-images: the first pass opens every image, for flattens queued by versions
                    before the journal indexed the queue]

SOURCE is rbd://FSID/POOL/IMAGE (an instance disk), rbd://FSID/POOL/IMAGE/SNAP, or file:///PATH.

options for every command:
  --config FILE     nova.conf / glance-api.conf / ceph-related files, merged in order (repeatable)
  --json            print exactly one JSON object on stdout
  --debug           show stack traces
Glance credentials (first found wins; never a flag: flags are visible to other users): OS_CLOUD +
  clouds.yaml, the OS_* variables (OS_AUTH_URL + password or application credential, or OS_AUTH_TOKEN),
  nova.conf [glance] keystoneauth options; [service_user] for service tokens. See README "Authentication".
exit status: 0 ok, 1 operation failed (after cleanup), 2 bad input or config`;

const POSITIONALS: Record<CommandName, [number, string]> = {
  snapshot: [1, 'SOURCE'],
  check: [1, 'SOURCE'],
  add: [1, 'FILE or -'],
  get: [1, 'LOCATION'],
  size: [1, 'LOCATION'],
  delete: [1, 'LOCATION'],
  gc: [0, ''],
  flattener: [-1, 'IMAGE_ID'],
};

function oneOf<T extends string>(flag: string, value: string | undefined, allowed: readonly T[], dflt: T): T {
  if (value === undefined) return dflt;
  if (!(allowed as readonly string[]).includes(value)) {
    throw new UsageError(`--${flag} must be one of ${allowed.join(', ')}, not "${value}"`);
  }
  return value as T;
}

function nonNegativeInt(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw new UsageError(`--${flag} must be a whole number, not "${value}"`);
  }
  return Number(value);
}

function positiveInt(flag: string, value: string | undefined): number | undefined {
  const n = nonNegativeInt(flag, value);
  if (n === 0) throw new UsageError(`--${flag} must be at least 1`);
  return n;
}

/** A gc / flattener threshold: a whole number of seconds no smaller than what keeps a live lease safe. */
function threshold(flag: string, value: string | undefined): number | undefined {
  const n = nonNegativeInt(flag, value);
  const min = minThresholdSeconds();
  if (n !== undefined && n < min) {
    throw new UsageError(`--${flag} must be at least ${min} seconds (two lease periods): a smaller value could take a live run's work`);
  }
  return n;
}

/** `help` / `version` for those requests, which the caller answers itself. */
export function parseInvocation(argv: string[]): Invocation | 'help' | 'version' {
  let parsed: ReturnType<typeof parseOptions>;
  try {
    parsed = parseOptions(argv);
  } catch (err) {
    throw new UsageError(`${(err as Error).message.split('\n')[0]} (see snapstore --help)`);
  }
  return invocationOf(parsed);
}

function parseOptions(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      config: { type: 'string', multiple: true, short: 'c' },
      json: { type: 'boolean' },
      debug: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean' },
      'image-id': { type: 'string' },
      name: { type: 'string' },
      mode: { type: 'string' },
      flatten: { type: 'string' },
      'chain-soft': { type: 'string' },
      'chain-hard': { type: 'string' },
      checksums: { type: 'string' },
      incremental: { type: 'boolean' },
      'keep-common-points': { type: 'string' },
      once: { type: 'boolean' },
      status: { type: 'boolean' },
      'stale-lock-seconds': { type: 'string' },
      output: { type: 'string', short: 'o' },
      size: { type: 'string' },
      'dry-run': { type: 'boolean' },
      'older-than': { type: 'string' },
      'scan-images': { type: 'boolean' },
      group: { type: 'boolean' },
    },
  });
}

function invocationOf(parsed: ReturnType<typeof parseOptions>): Invocation | 'help' | 'version' {
  const { values, positionals } = parsed;
  if (values.help) return 'help';
  if (values.version) return 'version';
  const [command, ...rest] = positionals;
  if (!command) throw new UsageError('no command given (see snapstore --help)');
  if (!(COMMANDS as readonly string[]).includes(command)) {
    throw new UsageError(`unknown command "${command}" (commands: ${COMMANDS.join(', ')})`);
  }
  const cmd = command as CommandName;
  const [count, what] = POSITIONALS[cmd];
  const group = values.group ?? false;
  if (group) checkGroupUsage(cmd, rest, values);
  else if (count >= 0 && rest.length !== count) {
    throw new UsageError(
      count === 0 ? `${cmd} takes no arguments, got "${rest.join(' ')}"` : `${cmd} needs exactly one ${what}, got ${rest.length}`,
    );
  }
  const imageId = values['image-id'];
  if (imageId !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(imageId)) {
    throw new UsageError('--image-id must be 1-128 characters of letters, digits, ".", "_" or "-"');
  }
  return {
    command: cmd,
    positionals: rest,
    configs: values.config ?? [],
    json: values.json ?? false,
    debug: values.debug ?? false,
    imageId,
    name: values.name,
    mode: oneOf('mode', values.mode, ['auto', 'direct', 'copy'] as const, 'auto'),
    flatten: oneOf('flatten', values.flatten, ['sync', 'background', 'never'] as const, 'sync'),
    chainSoft: nonNegativeInt('chain-soft', values['chain-soft']),
    chainHard: nonNegativeInt('chain-hard', values['chain-hard']),
    checksums: oneOf('checksums', values.checksums, ['auto', 'inline', 'off'] as const, 'auto'),
    incremental: values.incremental ?? false,
    keepCommonPoints: positiveInt('keep-common-points', values['keep-common-points']),
    once: values.once ?? false,
    status: values.status ?? false,
    staleLockSeconds: threshold('stale-lock-seconds', values['stale-lock-seconds']),
    output: values.output,
    size: nonNegativeInt('size', values.size),
    dryRun: values['dry-run'] ?? false,
    olderThanSeconds: threshold('older-than', values['older-than']),
    scanImages: values['scan-images'] ?? false,
    group,
  };
}

/** --group: snapshot or check, of one SOURCE or more; no option that names one image. */
function checkGroupUsage(cmd: CommandName, rest: string[], values: ReturnType<typeof parseOptions>['values']): void {
  if (cmd !== 'snapshot' && cmd !== 'check') throw new UsageError(`--group is for snapshot and check, not ${cmd}`);
  if (rest.length === 0) throw new UsageError(`${cmd} --group needs at least one SOURCE`);
  if (values['image-id'] !== undefined) throw new UsageError('--image-id names one image; a group snapshot makes one per disk');
  if (values.flatten === 'background') throw new UsageError('--flatten background is not possible for a group snapshot (its disks are copied)');
}
