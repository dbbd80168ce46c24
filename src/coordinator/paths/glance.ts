// The Glance steps of a run: create the image the snapshot fills (deleted again on failure) and register
// the finished image's location with it.
import type { GlanceClient } from '../../glance/client.js';
import { GlanceError } from '../../glance/errors.js';
import type { RunContext } from '../context.js';
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
  extra: { checksums?: SnapshotResult['checksums']; expectedFsid?: string | null },
): Promise<SnapshotResult['glance']> {
  const client = ctx.svc.glance;
  const target = ctx.glanceImage;
  if (!client || !target) return null;
  const { checksums: h, expectedFsid } = extra;
  const signal = ctx.opts.signal;
  const added = await ctx.r.step('glance-add-location', () =>
    client.addLocation(target.id, location, {
      ...(h ? { checksum: h.checksum, osHashAlgo: 'sha512', osHashValue: h.multihash } : {}),
      ...(expectedFsid ? { expectedFsid } : {}),
      ...(signal ? { signal } : {}),
    }),
  );
  return { id: added.image.id, status: added.image.status };
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
