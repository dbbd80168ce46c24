// Kept so that imports of `drivers/rbd.js` written before the driver became a folder still resolve; new
// code imports `drivers/rbd/index.js`.
export * from './rbd/index.js';
