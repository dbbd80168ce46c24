// FileStore: glance_store's filesystem driver. One file per image, named by the image id, directly in the
// data directory; its location is `file://<datadir>/<id>`. Writes are sparse (all-zero blocks and a sparse
// source's holes are skipped, the file is truncated to its final size so they become holes) and atomic (a dot-named temporary file in
// the same directory, fsync, then a hard link that fails if the id appeared meanwhile). Locations outside
// the data directory, and symlinks inside it, are refused. An unfinished image is marked by a dot file
// `.<id>.snapstore-pending` beside it holding the caller's marker; only this file knows that name.
import { constants as fsConstants, type Stats } from 'node:fs';
import { link, lstat, mkdir, open, readdir, realpath, rename, rm, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { checkImageId, formatFileLocation, parseLocation } from '../../location.js';
import {
  BadLocation,
  StoreClosed,
  StoreError,
  StoreExists,
  type AddOptions,
  type AddResult,
  type GetOptions,
  type PendingEntry,
  type Store,
  type StoreCapabilities,
  type StoreSource,
} from '../../store.js';
import { codeOf } from '../../errors.js';
import { BufferPool, checkAddArguments, chunked, isHoleRun, nonZeroRuns, resolveRange, withGuardedSource } from '../common.js';
import { checksumFields, createImageHasher } from '../hashing.js';
import { exists, fsStep, mapFsError, readIfPresent, syncDirectory, writeSynced } from './fs.js';
import { imageIdOfPendingName, isImageName, isTempOf, pendingName, tempName } from './layout.js';

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

  async locationOf(imageId: string): Promise<string> {
    return formatFileLocation(join(this.dataDir, checkImageId(imageId)));
  }

  /** The image, or its pending mark alone (an add killed before publishing it): the id is taken either way. */
  async exists(imageId: string): Promise<boolean> {
    this.checkOpen();
    checkImageId(imageId);
    return (await exists(join(this.dataDir, imageId))) || (await exists(join(this.dataDir, pendingName(imageId))));
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
    if (await this.exists(imageId)) throw new StoreExists(`image ${imageId} already exists in ${this.dataDir}`, { context: { imageId } });
    // The mark exists before anything else of the image, so a kill from here on leaves a marked id.
    const mark = options.pending === undefined ? null : await this.createMark(imageId, options.pending);
    const temp = join(this.dataDir, tempName(imageId));
    let linked = false;
    try {
      const { total, digests } = await this.writeTemp(temp, `storing image ${imageId}`, data, size, options);
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
      if (!linked) await unlink(temp).catch(() => {});
      if (mark && !linked) await rm(mark, { force: true }).catch(() => {});
      throw err;
    }
  }

  /** Writes the input sparsely into a new `temp` file, synced; returns its length and digests. */
  private async writeTemp(temp: string, what: string, data: StoreSource, size: number | undefined, options: AddOptions) {
    const hasher = createImageHasher({ checksums: options.checksums, size });
    let handle: FileHandle | null = null;
    try {
      handle = await fsStep('creating', temp, () => open(temp, 'wx', 0o644));
      const fh = handle;
      const pool = new BufferPool(this.chunkSize, 1);
      let total = 0;
      for await (const chunk of chunked(data, pool, hasher, { expectedSize: size, signal: options.signal, what })) {
        if (isHoleRun(chunk)) {
          // Writes are positioned: skipping the hole is the seek.
          total = chunk.offset + chunk.hole;
          continue;
        }
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
      handle = null;
      await fsStep('closing', temp, () => fh.close());
      return { total, digests };
    } finally {
      await handle?.close().catch(() => {});
      await hasher.close();
    }
  }

  /** Creates the mark of a new image (failing if one exists); returns its path. */
  private async createMark(imageId: string, marker: string): Promise<string> {
    const path = join(this.dataDir, pendingName(imageId));
    try {
      await writeSynced(path, marker, 'marking');
    } catch (err) {
      if (err instanceof StoreExists) {
        throw new StoreExists(`image ${imageId} already exists (unfinished) in ${this.dataDir}`, { cause: err, context: { imageId } });
      }
      // Not ours to keep: a mark half written by this call.
      await rm(path, { force: true }).catch(() => {});
      throw err;
    }
    await syncDirectory(this.dataDir);
    return path;
  }

  async markPending(imageId: string, marker: string): Promise<void> {
    this.checkOpen();
    checkImageId(imageId);
    await this.statImage(join(this.dataDir, imageId));
    // Written aside and renamed over the mark, so a reader never sees half a marker.
    const temp = join(this.dataDir, tempName(imageId));
    const path = join(this.dataDir, pendingName(imageId));
    try {
      await writeSynced(temp, marker, 'marking');
      await fsStep('marking', path, () => rename(temp, path));
    } catch (err) {
      await rm(temp, { force: true }).catch(() => {});
      throw err;
    }
    await syncDirectory(this.dataDir);
  }

  async clearPending(imageId: string): Promise<void> {
    this.checkOpen();
    const path = join(this.dataDir, pendingName(checkImageId(imageId)));
    await fsStep('unmarking', path, () => rm(path, { force: true }));
  }

  async readPending(imageId: string): Promise<string | null> {
    this.checkOpen();
    const path = join(this.dataDir, pendingName(checkImageId(imageId)));
    return readIfPresent(path);
  }

  async listPending(): Promise<PendingEntry[]> {
    this.checkOpen();
    const entries: PendingEntry[] = [];
    for (const name of (await this.entries()).sort()) {
      const imageId = imageIdOfPendingName(name);
      if (imageId === null) continue;
      const marker = await readIfPresent(join(this.dataDir, name));
      if (marker !== null) entries.push({ imageId, location: await this.locationOf(imageId), marker });
    }
    return entries;
  }

  /** Removes the image, its temporary files and, last (so an interrupted discard stays findable), its mark. */
  async discard(imageId: string): Promise<boolean> {
    this.checkOpen();
    checkImageId(imageId);
    const doomed = [imageId, ...(await this.entries()).filter((name) => isTempOf(imageId, name)), pendingName(imageId)];
    let found = false;
    for (const name of doomed) {
      const path = join(this.dataDir, name);
      if (!(await exists(path))) continue;
      await fsStep('discarding', path, () => rm(path, { force: true }));
      found = true;
    }
    if (found) await syncDirectory(this.dataDir);
    return found;
  }

  /** The names in the data directory (none while it does not exist). */
  private async entries(): Promise<string[]> {
    try {
      return await readdir(this.dataDir);
    } catch (err) {
      if (codeOf(err) === 'ENOENT') return [];
      throw mapFsError(err, 'listing', this.dataDir);
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
    // An unfinished image's mark goes with it (a mark alone would keep the id taken).
    const mark = join(dirname(path), pendingName(basename(path)));
    await fsStep('deleting', mark, () => rm(mark, { force: true }));
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
