// A file as a snapshot source: what its first bytes say it is (only raw can be stored as a raw image), its
// bytes as a stream that reports progress and stops when the run is told to, and the run's journal entry.
import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { CephCluster, Ioctx } from '../../ceph/index.js';
import { codeOf } from '../../errors.js';
import type { FileAssessment, RunContext } from '../context.js';
import { BadSourceError, SourceNotFoundError } from '../errors.js';
import { errorText } from '../events.js';
import type { Lease } from '../journal/lease.js';
import { registerRun } from '../journal/register.js';
import { pendingMarker, type RunRecord } from '../names.js';

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

/**
 * A file source has no disk to hold a run record, but its run still creates things (the target image, a
 * Glance image) that gc must find and judge by lease like any other run's: it takes a journal entry in the
 * configured disks' pool, where gc reads the journal. Without disks configured (a coordinator that only
 * stores files) there is no journal gc would read, and gc judges the target by its pending mark's owner and
 * age, as before. Returns the lease (null: no journal).
 */
export async function recordFileRun(ctx: RunContext, a: FileAssessment, target: string): Promise<Lease | null> {
  const { r, svc } = ctx;
  const where = await journalPool(ctx);
  if (!where) return null;
  const record: RunRecord = { ...pendingMarker(r.runId, 'copy', a.canonical, null), target, imageId: ctx.imageId, glance: ctx.glanceImage };
  return r.step('record', async () => {
    const held = await registerRun(where.session, where.io, record, svc.emit, ctx.leaseLost);
    r.always('stop renewing the journal lease', async () => held.stop());
    r.undo(`remove journal entry of run ${record.runId}`, ({ failed }) => (failed ? held.abandon() : held.release()));
    return held;
  });
}

async function journalPool(ctx: RunContext): Promise<{ session: CephCluster; io: Ioctx } | null> {
  const pool = ctx.svc.sourceConfig?.pool;
  if (pool === undefined) return null;
  const session = await ctx.svc.sourceSession();
  return { session, io: await session.pool(pool) };
}

/**
 * The run is complete: its journal entry goes. Failing here does not fail it; an entry left behind runs out
 * of lease, and gc then finds nothing of the finished run to remove but it.
 */
export async function unrecordFileRun(lease: Lease | null): Promise<void> {
  await lease?.release().catch(() => {});
}
