// FileStore's file system steps: fs errors as store errors, and the few calls it makes durable.
import { constants as fsConstants } from 'node:fs';
import { lstat, open, readFile } from 'node:fs/promises';
import { codeOf } from '../../errors.js';
import { BadLocation, StoreError, StoreExists, StoreFull, StoreNotFound, StorePermission } from '../../store.js';

/** An fs error as the store error a caller switches on. */
export function mapFsError(err: unknown, what: string, path: string): StoreError {
  if (err instanceof StoreError) return err;
  const code = codeOf(err);
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

export async function fsStep<T>(what: string, path: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw mapFsError(err, what, path);
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if (codeOf(err) === 'ENOENT') return false;
    throw mapFsError(err, 'checking', path);
  }
}

export async function readIfPresent(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if (codeOf(err) === 'ENOENT') return null;
    throw mapFsError(err, 'reading', path);
  }
}

/** Makes the new directory entry durable (the rename/link itself), as fsync on the file does not. */
export async function syncDirectory(dir: string): Promise<void> {
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

/** Creates `path` (failing if it exists) holding `text`, synced to disk before it is closed. */
export async function writeSynced(path: string, text: string, what: string): Promise<void> {
  const handle = await fsStep(what, path, () => open(path, 'wx', 0o644));
  try {
    await fsStep(what, path, async () => {
      await handle.writeFile(text, 'utf8');
      await handle.sync();
    });
  } finally {
    await handle.close().catch(() => {});
  }
}
