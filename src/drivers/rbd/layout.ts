// The names this driver gives what it keeps in a pool. Nobody outside src/drivers/rbd/ uses them: callers
// ask the store (locationOf, markPending, discard, clones.finalize) instead.

/** glance_store's rbd snapshot name: every location is `rbd://<fsid>/<pool>/<id>/snap`. */
export const RBD_SNAPSHOT = 'snap';
/** Image metadata key holding the pending mark of an unfinished image. */
export const PENDING_KEY = 'snapstore.pending';
/** RADOS object in the store's pool whose omap indexes the pending images (see pending-index.ts). */
export const PENDING_INDEX_OBJECT = 'snapstore_pending';
