// The RBD driver: RbdStore and what callers outside the driver may name.
export { RbdStore, type RbdStoreConfig } from './store.js';
export { RBD_SNAPSHOT } from './layout.js';
export { mapRbdError } from './errors.js';
