// MemoryStore (test/support/memory-store.ts), a store written only in a test, against the common contract.
import { MemoryStore } from '../support/memory-store.js';
import { testStore } from './suite.js';

testStore(
  'memory',
  async () => {
    const store = new MemoryStore();
    // The whole map, finished or not, with marks: the map is this suite's own.
    return { store, probe: async () => store.contents() };
  },
  { readAccess: true, writeAccess: true, readRandom: true, canClone: false, thinProvisioning: false, chunkSize: 64 * 1024, schemes: ['memory'] },
);
