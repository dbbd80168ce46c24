// The file driver: FileStore (glance_store's filesystem store).
export { FileStore, type FileStoreConfig } from './store.js';
