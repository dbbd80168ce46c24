// The Glance steps of a run: create the image the snapshot fills (deleted again on failure) and register
// the finished image's location with it.
import type { GlanceClient } from '../../glance/client.js';
import { GlanceError, GlanceOutcomeUnknown } from '../../glance/errors.js';
import { mayHaveApplied } from '../../glance/outcome.js';
import type { GlanceImage } from '../../glance/types.js';
import type { GlanceTarget, RunContext } from '../context.js';
import { errorText } from '../events.js';
import { GLANCE_RUN_PROPERTY } from '../names.js';
import type { SnapshotResult } from '../types.js';

/**
 * Creates the Glance image when the run makes its own (the caller did not name an existing one); `extra`
 * properties go with the run's own (a group snapshot's shared id).
 */
export async function createGlanceImage(ctx: RunContext, name: string, extra: Record<string, string> = {}): Promise<void> {
  const { r, imageId } = ctx;
  const glance = ctx.svc.glance;
  if (!glance || !ctx.glanceImage?.created) return;
  // The id is ours (a fresh uuid), so deleting it on failure can only delete what this run made. It is
  // to be deleted unless Glance certainly never saw the request (connection refused, or an HTTP error).
  const undo = () =>
    r.undo(`delete Glance image ${imageId}`, async () => {
      await glance.deleteImage(imageId, { ignoreMissing: true });
    });
  await r.step('glance-create', async () => {
    try {
      await glance.createImage({
        id: imageId,
        name,
        diskFormat: 'raw',
        containerFormat: 'bare',
        properties: { ...extra, [GLANCE_RUN_PROPERTY]: r.runId },
      });
    } catch (err) {
      if (!glanceRefusedRequest(err)) undo();
      throw err;
    }
    undo();
  });
}

/** Glance answered with an HTTP error, or the connection was refused before anything was sent. */
function glanceRefusedRequest(err: unknown): boolean {
  if (!(err instanceof GlanceError)) return false;
  return (err.status !== undefined && err.status < 500) || err.context.failure === 'refused';
}

/** Points the run's Glance image at `location` (nothing to do without Glance). */
export async function registerLocation(
  ctx: RunContext,
  location: string,
  extra: { checksums?: SnapshotResult['checksums']; expectedFsid?: string | null; marker: string },
): Promise<SnapshotResult['glance']> {
  const client = ctx.svc.glance;
  const target = ctx.glanceImage;
  if (!client || !target) return null;
  const { checksums: h, expectedFsid } = extra;
  const signal = ctx.opts.signal;
  const image = await ctx.r.step('glance-add-location', async () => {
    try {
      const added = await client.addLocation(target.id, location, {
        ...(h ? { checksum: h.checksum, osHashAlgo: 'sha512', osHashValue: h.multihash } : {}),
        ...(expectedFsid ? { expectedFsid } : {}),
        ...(signal ? { signal } : {}),
      });
      return added.image;
    } catch (err) {
      if (!mayHaveApplied(err)) throw err;
      return settle(ctx, client, target, location, extra.marker, err);
    }
  });
  ctx.r.commit();
  return { id: image.id, status: image.status };
}

/**
 * A location call without a clear answer (timed out after sending, connection broken, cancelled): the image
 * read back decides. Active with the location: the run succeeded. Without it: the image the run created is
 * deleted in Glance first (so a request still on its way cannot land on it), then the run fails and its
 * rollback removes the data. No telling: nothing is removed; the data is marked pending again and the run
 * left in the journal, for gc to decide the same way once Glance answers.
 */
async function settle(ctx: RunContext, client: GlanceClient, target: GlanceTarget, location: string, marker: string, err: unknown): Promise<GlanceImage> {
  const read = await client.readLocation(target.id, location);
  ctx.svc.emit({ type: 'glance-outcome', runId: ctx.r.runId, imageId: target.id, state: read.state });
  if (read.state === 'present') return read.image;
  let why: unknown = read.state === 'unknown' ? read.error : null;
  if (read.state === 'absent' && target.created && read.image) {
    why = await client.deleteImage(target.id, { ignoreMissing: true }).then(
      () => null,
      (e: unknown) => e,
    );
  }
  if (why === null) throw err;
  const unknown = new GlanceOutcomeUnknown(
    { method: 'PATCH', path: `/v2/images/${target.id}` },
    `whether Glance image ${target.id} points at ${location} is not known (${errorText(why)}); the data is kept for gc`,
    { cause: err },
  );
  ctx.r.leaveForGc(unknown);
  // The mark is gc's proof that the data is this run's; gc asks Glance before it removes anything marked.
  await ctx.store.markPending(ctx.imageId, marker).catch(() => {});
  throw unknown;
}

/**
 * `auto`: hash only when the image is registered with a Glance that will not hash it itself (image API
 * before 2.17, PATCH locations). When Glance's versions cannot be read, hash: better slow than missing.
 */
export async function wantChecksums(glance: GlanceClient | null, mode: 'auto' | 'inline' | 'off', registering: boolean): Promise<boolean> {
  if (mode === 'inline') return true;
  if (mode === 'off' || !glance || !registering) return false;
  return !(await glance.supportsLocationsApi().catch(() => false));
}
