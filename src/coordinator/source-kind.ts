// What kind of source a snapshot reads is the coordinator's business (what kind of store it writes to is
// not: it asks the Store). This is the one place that looks at a source's kind.
import type { Source } from './source.js';

export type RbdSource = Extract<Source, { kind: 'rbd' }>;
export type FileSource = Extract<Source, { kind: 'file' }>;

/** Whether the source is an RBD disk (or an existing snapshot of one) rather than a file. */
export function isRbdSource(src: Source): src is RbdSource {
  switch (src.kind) {
    case 'rbd':
      return true;
    default:
      return false;
  }
}
