// Scratch images `check` made (`snapstore-probe-<uuidv7>`) and could not remove: their name says when.
// The source user makes them where the store keeps clones.
import { probeTime } from '../names.js';
import { clonePool, removeImage } from './removals.js';
import { toLeftover, type Scan } from './scan.js';

/** A probe lives well under a second; one this young may belong to a `check` running right now. */
const PROBE_MIN_AGE_MS = 10 * 60 * 1000;

export async function scanProbes(scan: Scan): Promise<void> {
  const where = (await scan.store.clones?.where()) ?? null;
  const io = await clonePool(scan.source, where);
  if (!io || !scan.source) return;
  const fsid = scan.source.fsid;
  const probes: Array<{ name: string; parent: boolean }> = [];
  for (const name of await io.listImages()) {
    const born = probeTime(name);
    if (born === null || scan.now - born < Math.max(scan.olderThanMs, PROBE_MIN_AGE_MS)) continue;
    const st = await io.statImage(name).catch(() => null);
    if (st) probes.push({ name, parent: st.parent !== null });
  }
  // Clones of probes go before the probes they hang from.
  probes.sort((x, y) => Number(y.parent) - Number(x.parent));
  scan.add(
    probes.map(({ name }) => ({
      leftover: toLeftover('probe-image', `rbd://${fsid}/${io.pool}/${name}`, null, null, probeTime(name)),
      remove: () => removeImage(io, name),
    })),
  );
}
