// FileStore: glance_store's filesystem driver. One file per image, named by the image id, directly in the
// data directory; its location is `file://<datadir>/<id>`. Writes are sparse (all-zero blocks are skipped,
// the file is truncated to its final size so they become holes) and atomic (a dot-named temporary file in
// the same directory, fsync, then a hard link that fails if the id appeared meanwhile). Locations outside
// the data directory, and symlinks inside it, are refused.
import { randomUUID } from 'node:crypto';
import { constants as fsConstants, type Stats } from 'node:fs';
import { link, lstat, mkdir, open, realpath, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { formatFileLocation, parseLocation, checkImageId } from '../location.js';
import {
  BadLocation,
  StoreClosed,
  StoreError,
  StoreExists,
  StoreFull,
  StoreNotFound,
  StorePermission,
  type AddOptions,
  type AddResult,
  type GetOptions,
  type Store,
  type StoreCapabilities,
  type StoreSource,
} from '../store.js';
import { BufferPool, checkAddArguments, chunked, nonZeroRuns, resolveRange, withGuardedSource } from './common.js';
import { checksumFields, createImageHasher } from './hashing.js';

export interface FileStoreConfig {
  /** `filesystem_store_datadir`; created on first write when missing. */
  dataDir: string;
  /** Holes are made at this granularity (default 4 KiB, the usual file system block). */
  sparseBlockSize?: number;
  /** Bytes read from the input per write round (default 1 MiB). */
  chunkSize?: number;
}

const DEFAULT_CHUNK = 1024 * 1024;
const DEFAULT_SPARSE_BLOCK = 4096;

function errnoOf(err: unknown): string | undefined {
  return typeof (err as { code?: unknown })?.code === 'string' ? (err as { code: string }).code : undefined;
}

/** An fs error as the store error a caller switches on. */
function mapFsError(err: unknown, what: string, path: string): StoreError {
  if (err instanceof StoreError) return err;
  const code = errnoOf(err);
  const message = `${what} ${path}: ${err instanceof Error ? err.message : String(err)}`;
  const options = { cause: err, context: { path, errno: code ?? null } };
  switch (code) {
    case 'ENOENT':
      return new StoreNotFound(message, options);
    case 'EEXIST':
      return new StoreExists(message, options);
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return new StorePermission(message, options);
    case 'ENOSPC':
    case 'EDQUOT':
    case 'EFBIG':
      return new StoreFull(message, options);
    case 'ELOOP':
      return new BadLocation(`${path} is a symbolic link; the store only serves regular files`, options);
    default:
      return new StoreError('STORE_ERROR', message, options);
  }
}

async function fsStep<T>(what: string, path: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw mapFsError(err, what, path);
  }
}

export class FileStore implements Store {
  readonly kind = 'file';
  readonly schemes = ['file', 'filesystem'] as const;
  readonly capabilities: StoreCapabilities = {
    readAccess: true,
    writeAccess: true,
    readRandom: true,
    canClone: false,
    thinProvisioning: true,
  };
  /** The data directory, absolute. */
  readonly dataDir: string;
  private readonly chunkSize: number;
  private readonly sparseBlockSize: number;
  private ready: Promise<string> | null = null;
  private closed = false;

  constructor(config: FileStoreConfig) {
    this.dataDir = resolve(config.dataDir);
    this.chunkSize = config.chunkSize ?? DEFAULT_CHUNK;
    this.sparseBlockSize = config.sparseBlockSize ?? DEFAULT_SPARSE_BLOCK;
    if (this.chunkSize % this.sparseBlockSize !== 0) {
      throw new StoreError('CONFIG_INVALID', 'FileStore chunkSize must be a multiple of sparseBlockSize');
    }
  }

  /** The location an image id is (or would be) stored at. */
  locationOf(imageId: string): string {
    return formatFileLocation(join(this.dataDir, checkImageId(imageId)));
  }

  /** Creates the data directory once; resolves to its real path (for locations written through a symlink). */
  private prepare(): Promise<string> {
    this.ready ??= fsStep('creating data directory', this.dataDir, async () => {
      await mkdir(this.dataDir, { recursive: true });
      return realpath(this.dataDir);
    });
    this.ready.catch(() => {
      this.ready = null;
    });
    return this.ready;
  }

  private checkOpen(): void {
    if (this.closed) throw new StoreClosed('the FileStore is closed');
  }

  async add(imageId: string, data: StoreSource, size?: number, options: AddOptions = {}): Promise<AddResult> {
    return withGuardedSource(data, () => this.write(imageId, data, size, options));
  }

  private async write(imageId: string, data: StoreSource, size: number | undefined, options: AddOptions): Promise<AddResult> {
    this.checkOpen();
    checkAddArguments(imageId, size);
    await this.prepare();
    const target = join(this.dataDir, imageId);
    if (await exists(target)) throw new StoreExists(`image ${imageId} already exists in ${this.dataDir}`, { context: { imageId } });

    const temp = join(this.dataDir, `.${imageId}.${randomUUID().slice(0, 8)}.tmp`);
    const what = `storing image ${imageId}`;
    const hasher = createImageHasher({ checksums: options.checksums, size });
    let handle: FileHandle | null = null;
    let linked = false;
    try {
      handle = await fsStep('creating', temp, () => open(temp, 'wx', 0o644));
      const fh = handle;
      const pool = new BufferPool(this.chunkSize, 1);
      let total = 0;
      for await (const chunk of chunked(data, pool, hasher, { expectedSize: size, signal: options.signal, what })) {
        for (const run of nonZeroRuns(chunk.data, chunk.offset, this.sparseBlockSize)) {
          await fsStep('writing', temp, () => fh.write(chunk.data, run.start, run.end - run.start, chunk.offset + run.start));
        }
        pool.give(chunk.buffer);
        total = chunk.offset + chunk.data.length;
      }
      const digests = await hasher.digest();
      // Skipped zero blocks at the end only exist once the file has its full length.
      await fsStep('truncating', temp, () => fh.truncate(total));
      await fsStep('syncing', temp, () => fh.sync());
      await fsStep('closing', temp, () => fh.close());
      handle = null;
      await fsStep('publishing', target, () => link(temp, target)).catch((err: unknown) => {
        if (err instanceof StoreExists) {
          throw new StoreExists(`image ${imageId} already exists in ${this.dataDir}`, { cause: err, context: { imageId } });
        }
        throw err;
      });
      linked = true;
      await unlink(temp).catch(() => {});
      await syncDirectory(this.dataDir);
      return { location: formatFileLocation(target), size: total, ...checksumFields(digests) };
    } catch (err) {
      await handle?.close().catch(() => {});
      if (!linked) await unlink(temp).catch(() => {});
      throw err;
    } finally {
      await hasher.close();
    }
  }

  /** Resolves a location to a file directly inside the data directory, or throws BadLocation. */
  private async pathOf(location: string): Promise<string> {
    const loc = parseLocation(location);
    if (loc.scheme === 'rbd') throw new BadLocation(`the file store cannot serve an rbd location`, { context: { reason: 'scheme' } });
    const real = await this.prepare().catch(() => this.dataDir);
    const dir = dirname(loc.path);
    const name = basename(loc.path);
    if ((dir !== this.dataDir && dir !== real) || !isImageName(name)) {
      throw new BadLocation(`${loc.path} is not an image of the file store at ${this.dataDir}`, {
        context: { reason: 'outside data directory', dataDir: this.dataDir },
      });
    }
    return join(this.dataDir, name);
  }

  private async statImage(path: string): Promise<Stats> {
    const stats = await fsStep('reading', path, () => lstat(path));
    if (stats.isSymbolicLink()) {
      throw new BadLocation(`${path} is a symbolic link; the store only serves regular files`, { context: { reason: 'symlink' } });
    }
    if (!stats.isFile()) throw new BadLocation(`${path} is not a regular file`, { context: { reason: 'not a file' } });
    return stats;
  }

  async get(location: string, options?: GetOptions): Promise<Readable> {
    this.checkOpen();
    const path = await this.pathOf(location);
    // O_NOFOLLOW: a symlink swapped in after the location was checked still cannot lead outside.
    const handle = await fsStep('opening', path, () => open(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW));
    try {
      const stats = await fsStep('reading', path, () => handle.stat());
      if (!stats.isFile()) throw new BadLocation(`${path} is not a regular file`, { context: { reason: 'not a file' } });
      const { start, end } = resolveRange(stats.size, options);
      if (start === end) {
        await handle.close();
        return Readable.from([], { objectMode: false });
      }
      return handle.createReadStream({ start, end: end - 1, highWaterMark: this.chunkSize, autoClose: true });
    } catch (err) {
      await handle.close().catch(() => {});
      throw err;
    }
  }

  async getSize(location: string): Promise<number> {
    this.checkOpen();
    const path = await this.pathOf(location);
    return (await this.statImage(path)).size;
  }

  async delete(location: string): Promise<void> {
    this.checkOpen();
    const path = await this.pathOf(location);
    await this.statImage(path);
    await fsStep('deleting', path, () => unlink(path));
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

function isImageName(name: string): boolean {
  try {
    checkImageId(name);
    return true;
  } catch {
    return false;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return false;
    throw mapFsError(err, 'checking', path);
  }
}

/** Makes the new directory entry durable (the rename/link itself), as fsync on the file does not. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY).catch(() => null);
  if (!handle) return;
  try {
    await handle.sync();
  } catch {
    // Some file systems refuse fsync on directories; the data itself is already synced.
  } finally {
    await handle.close();
  }
}
