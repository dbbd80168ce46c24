// MemoryStore (test/support/memory-store.ts), a store written only in a test, against the common contract.
import { MemoryStore } from '../support/memory-store.js';
import { testStore } from './suite.js';

testStore(
  'memory',
  async () => {
    const store = new MemoryStore();
    return { store, leftovers: async (marker) => store.names().filter((name) => name.includes(marker)) };
  },
  { readAccess: true, writeAccess: true, readRandom: true, canClone: false, thinProvisioning: false, chunkSize: 64 * 1024, schemes: ['memory'] },
);
