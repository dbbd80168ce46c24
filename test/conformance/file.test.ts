// FileStore against the common Store contract, in a directory of its own: the probe lists it whole.
import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { FileStore } from '../../src/drivers/file/index.js';
import { list } from '../support/leftovers.js';
import { testStore } from './suite.js';

const root = mkdtempSync(join(tmpdir(), 'snapstore-conf-file-'));
afterAll(() => rm(root, { recursive: true, force: true }));

testStore(
  'file',
  async () => {
    const dataDir = join(root, 'images');
    return { store: new FileStore({ dataDir }), probe: () => list({ clusters: [], dirs: [dataDir] }) };
  },
  { readAccess: true, writeAccess: true, readRandom: true, canClone: false, thinProvisioning: true, chunkSize: 1024 * 1024, schemes: ['file', 'filesystem'] },
);
