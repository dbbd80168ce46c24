// The Store the copy path writes into, made from the target config.
import type { TargetConfig } from '../config/types.js';
import { FileStore } from '../drivers/file.js';
import type { Store } from '../store.js';
import { NotConfiguredError } from './errors.js';

export async function openTargetStore(target: TargetConfig): Promise<Store> {
  if (target.kind === 'file') return new FileStore({ dataDir: target.dataDir });
  throw new NotConfiguredError('the RBD store driver is not available yet');
}
