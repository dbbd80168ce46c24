// librbd feature bits and their names (include/rbd/features.h).
import { invalid } from './errors.js';

/** librbd feature bits by name (include/rbd/features.h). */
export const FEATURES = Object.freeze({
  layering: 1n << 0n,
  striping: 1n << 1n,
  'exclusive-lock': 1n << 2n,
  'object-map': 1n << 3n,
  'fast-diff': 1n << 4n,
  'deep-flatten': 1n << 5n,
  journaling: 1n << 6n,
  'data-pool': 1n << 7n,
  operations: 1n << 8n,
  migrating: 1n << 9n,
  'non-primary': 1n << 10n,
  'dirty-cache': 1n << 11n,
});

/** A feature's name as librbd spells it, e.g. 'deep-flatten'. */
export type FeatureName = keyof typeof FEATURES;

const BY_NAME: ReadonlyMap<string, bigint> = new Map(Object.entries(FEATURES));
const BY_BIT: ReadonlyMap<bigint, string> = new Map(Object.entries(FEATURES).map(([name, bit]) => [bit, name]));

/** Feature bits → names, lowest bit first. Unknown bits are reported as "bit<N>". */
export function featureNames(bits: bigint): string[] {
  const out: string[] = [];
  for (let i = 0n; i < 64n; i++) {
    const bit = 1n << i;
    if ((bits & bit) === 0n) continue;
    out.push(BY_BIT.get(bit) ?? `bit${i}`);
  }
  return out;
}

/**
 * Feature names (or bits) → bits.
 * @throws {InvalidArgumentError} not a bigint or an array, or an unknown name
 */
export function featureBits(features: bigint | readonly string[], call: string, object?: string): bigint {
  if (typeof features === 'bigint') return features;
  if (!Array.isArray(features)) throw invalid(call, object, 'features must be a bigint or an array of feature names');
  let bits = 0n;
  for (const name of features) {
    const bit = BY_NAME.get(name);
    if (bit === undefined) {
      throw invalid(call, object, `unknown feature ${JSON.stringify(name)} (known: ${[...BY_NAME.keys()].join(', ')})`);
    }
    bits |= bit;
  }
  return bits;
}
