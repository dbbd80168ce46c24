// The names this driver gives what it keeps in a pool. Nobody outside src/drivers/rbd/ uses them: callers
// ask the store (locationOf, markPending, discard, clones.finalize) instead.

/** glance_store's rbd snapshot name: every location is `rbd://<fsid>/<pool>/<id>/snap`. */
export const RBD_SNAPSHOT = 'snap';
/** Image metadata key holding the pending mark of an unfinished image. */
export const PENDING_KEY = 'snapstore.pending';
/** Image metadata key holding an incremental snapshot's record of what it was made from (the caller's text). */
export const BASE_KEY = 'snapstore.base';
/** Metadata every snapstore key starts with: librbd copies a base's metadata into its clone, and they are not the clone's. */
export const OWN_KEY_PREFIX = 'snapstore.';
/** RADOS object in the store's pool whose omap indexes the pending images (see pending-index.ts). */
export const PENDING_INDEX_OBJECT = 'snapstore_pending';
