// A file as a snapshot source: what its first bytes say it is (only raw can be stored as a raw image), and
// its bytes as a stream that reports progress and stops when the run is told to.
import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { codeOf } from '../../errors.js';
import { BadSourceError, SourceNotFoundError } from '../errors.js';
import { errorText } from '../events.js';

/** What a file's first bytes say it is: `raw` unless it carries a known image format's magic. */
export async function sniffFile(path: string): Promise<string> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    const code = codeOf(err);
    if (code === 'ENOENT') throw new SourceNotFoundError(`source file ${path} does not exist`, { path }, err);
    throw new BadSourceError(`source file ${path} cannot be read (${code ?? errorText(err)})`, { path });
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new BadSourceError(`source ${path} is not a regular file`, { path });
    const head = Buffer.alloc(512);
    const { bytesRead } = await handle.read(head, 0, 512, 0);
    return formatOf(head.subarray(0, bytesRead));
  } finally {
    await handle.close();
  }
}

function formatOf(b: Buffer): string {
  if (b.subarray(0, 4).equals(Buffer.from([0x51, 0x46, 0x49, 0xfb]))) return 'qcow2';
  if (b.subarray(0, 4).toString('latin1') === 'KDMV') return 'vmdk';
  if (b.subarray(0, 8).toString('latin1') === 'vhdxfile') return 'vhdx';
  if (b.subarray(0, 8).toString('latin1') === 'conectix') return 'vhd';
  if (b.length >= 68 && b.readUInt32LE(64) === 0xbeda107f) return 'vdi';
  return 'raw';
}

/** The file's bytes; throws `stop()` as soon as `progress` says the run must stop. */
export async function* fileStream(
  path: string,
  size: number,
  progress: (done: number, total: number) => boolean,
  stop: () => unknown,
): AsyncGenerator<Buffer, void, undefined> {
  let done = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * 1024 * 1024 })) {
    const buf = chunk as Buffer;
    yield buf;
    done += buf.length;
    if (!progress(done, size)) throw stop();
  }
}
