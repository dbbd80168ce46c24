// The addon as the JS side sees it, and its lazy loading. The interfaces below are the contract with the
// C++ glue in ../src (method names and argument order as DefineClass registers them); the public classes
// in cluster.ts, ioctx.ts and image.ts are the only callers. Importing this module never loads the addon:
// the first call that needs it does, and a failure is kept and rethrown as one NativeUnavailableError.
import { createRequire } from 'node:module';
import { Errno, NativeUnavailableError } from './errors.js';
import type { ChildInfo, Extent, ImageStat, LockerInfo, ParentInfo } from './types.js';

/** librbd's progress, forwarded to the JS thread. */
export type ProgressListener = (done: number, total: number) => void;

/**
 * Makes the progress callback of the operation it was passed to return -ECANCELED; `progress` is that
 * callback's latest sample ([0, 0] before the first), stored without waking the JS thread.
 */
export interface CancelToken {
  cancel(): void;
  readonly progress: [done: number, total: number];
}

/** What NativeImage.stat / NativeIoctx.statImage resolve with: the public ImageStat less the feature names. */
export type NativeStat = Omit<ImageStat, 'featureNames'>;

export interface NativeSnap {
  id: bigint;
  name: string;
  size: number;
  namespace: 'user' | 'group' | 'trash' | 'mirror' | 'unknown';
  originalName?: string;
  /** Milliseconds since the epoch. */
  timestamp?: number;
}

export interface NativeTrashEntry {
  id: string;
  name: string;
  source: string;
  /** Milliseconds since the epoch. */
  deletionTime: number;
  defermentEndTime: number;
}

export type UInt = number | bigint;

export interface NativeCluster {
  fsid(): string;
  confGet(key: string): string;
  listPools(): Promise<string[]>;
  openIoctx(pool: string, namespace: string): Promise<NativeIoctx>;
  close(): Promise<void>;
}

export interface NativeCreateOptions {
  order?: number | undefined;
  dataPool?: string | undefined;
  stripeUnit?: bigint | undefined;
  stripeCount?: bigint | undefined;
  features?: bigint;
}

export interface NativeCloneOptions {
  order?: number | undefined;
  format?: 1 | 2 | undefined;
  features?: bigint;
}

export interface NativeIoctx {
  createImage(name: string, size: UInt, opts: NativeCreateOptions): Promise<void>;
  removeImage(name: string, token?: CancelToken): Promise<void>;
  renameImage(src: string, dst: string): Promise<void>;
  listImages(): Promise<string[]>;
  statImage(name: string): Promise<NativeStat>;
  clone(parentImage: string, parentSnap: string, dest: NativeIoctx, childName: string, opts: NativeCloneOptions): Promise<void>;
  trashMove(name: string, delaySeconds: UInt): Promise<void>;
  trashList(): Promise<NativeTrashEntry[]>;
  trashRemove(id: string, force: boolean, token?: CancelToken): Promise<void>;
  trashRestore(id: string, name: string): Promise<void>;
  openImage(name: string, readOnly: boolean, snapshot?: string, byId?: boolean): Promise<NativeImage>;
  close(): Promise<void>;
}

export interface NativeImage {
  size(): Promise<number>;
  stat(): Promise<NativeStat>;
  features(): Promise<bigint>;
  flags(): Promise<bigint>;
  parentInfo(): Promise<ParentInfo | null>;
  diffIterate(fromSnapshot: string | null, offset: UInt, length: UInt | undefined, wholeObject: boolean): Promise<Extent[]>;
  /** Object numbers, ascending, or null when not listed (pool too large, or a striped image). */
  dataObjects(maxPoolObjects: UInt): Promise<number[] | null>;
  /** Resolves with the number of bytes read into `buf`. */
  read(buf: Buffer, offset: UInt, length: UInt): Promise<number>;
  write(buf: Buffer, offset: UInt): Promise<void>;
  discard(offset: UInt, length: UInt): Promise<void>;
  writeZeroes(offset: UInt, length: UInt): Promise<void>;
  flush(): Promise<void>;
  resize(size: UInt, token?: CancelToken): Promise<void>;
  flatten(token?: CancelToken): Promise<void>;
  snapCreate(name: string): Promise<void>;
  snapRemove(name: string, force: boolean, token?: CancelToken): Promise<void>;
  snapRemoveById(id: UInt): Promise<void>;
  snapList(): Promise<NativeSnap[]>;
  snapProtect(name: string): Promise<void>;
  snapUnprotect(name: string): Promise<void>;
  snapIsProtected(name: string): Promise<boolean>;
  snapExists(name: string): Promise<boolean>;
  listChildren(): Promise<ChildInfo[]>;
  snapSet(name: string | null): Promise<void>;
  metadataGet(key: string): Promise<string | null>;
  metadataSet(key: string, value: string): Promise<void>;
  metadataRemove(key: string): Promise<void>;
  metadataList(): Promise<Record<string, string>>;
  lockExclusive(cookie: string): Promise<void>;
  unlock(cookie: string): Promise<void>;
  listLockers(): Promise<LockerInfo[]>;
  breakLock(client: string, cookie: string): Promise<void>;
  close(): Promise<void>;
}

/** The module ../src/addon.cc exports. */
export interface Binding {
  NativeCluster: {
    connect(confPath: string, user: string, keyring: string | undefined, timeoutSeconds: number, options: Array<[string, string]>): Promise<NativeCluster>;
  };
  CancelToken: new () => CancelToken;
  trimMemory(): Promise<boolean>;
}

const require = createRequire(import.meta.url);
/** Relative to the compiled module (dist/), like node-gyp's output is to the package. */
const ADDON_PATH = '../build/Release/ceph_rbd.node';
let binding: Binding | undefined;
let loadFailure: NativeUnavailableError | undefined;

function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

function codeOf(err: unknown): unknown {
  return typeof err === 'object' && err !== null && 'code' in err ? err.code : undefined;
}

/** Turns a failed require of the addon into the one error that says how to fix it. */
function explainLoadFailure(err: unknown): NativeUnavailableError {
  const msg = messageOf(err);
  const lib = /(lib(?:rbd|rados)\.so[.\d]*): cannot open shared object file/.exec(msg);
  let text: string;
  if (lib) {
    text = `${lib[1]} not found: apt-get install librbd1 librados2 (the Ceph client libraries)`;
  } else if (codeOf(err) === 'MODULE_NOT_FOUND' || /Cannot find module/.test(msg)) {
    text =
      'ceph-rbd-napi addon not built: npm run build --workspace ceph-rbd-napi ' +
      '(needs librbd-dev librados-dev, g++, make, python3)';
  } else if (/undefined symbol|version `[^']+' not found/.test(msg)) {
    text = `ceph-rbd-napi addon does not match the installed librbd/librados (${msg}): rebuild it with npm run build --workspace ceph-rbd-napi`;
  } else {
    text = `ceph-rbd-napi addon failed to load: ${msg}`;
  }
  return new NativeUnavailableError(text, { errno: Errno.ELIBACC, call: 'dlopen', object: ADDON_PATH, cause: err });
}

/** The addon, loaded on first use. @throws {NativeUnavailableError} the same one on every call after a failure */
export function load(): Binding {
  if (binding) return binding;
  if (loadFailure) throw loadFailure;
  try {
    binding = require(ADDON_PATH) as Binding;
  } catch (err) {
    loadFailure = explainLoadFailure(err);
    throw loadFailure;
  }
  return binding;
}

/** Loads the addon (and librbd/librados) if not loaded yet; true when that worked. Never throws. */
export function isAvailable(): boolean {
  try {
    load();
    return true;
  } catch {
    return false;
  }
}

/**
 * malloc_trim(0) in a pool thread: gives the free memory of every malloc arena back to the kernel.
 * librados' threads each allocate from an arena of their own and keep what a flatten or a copy frees, so
 * a long-running process's RSS creeps up from run to run; call this when a big operation is done.
 * Resolves true when memory was released, false when there was none to release or the C library is not
 * glibc.
 */
export async function trimMemory(): Promise<boolean> {
  return load().trimMemory();
}
