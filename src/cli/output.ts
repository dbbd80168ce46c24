// Where the command's words go: with --json exactly one JSON object on stdout and nothing else there;
// human text and progress on stderr (progress only when stderr is a terminal).
import { redactSecrets, SnapstoreError } from '../errors.js';

export interface Output {
  json: boolean;
  /** The command's result: JSON on stdout with --json, else the human rendering on stdout. */
  result(value: object, human: string): void;
  /** A note for humans (stderr), silent with --json. */
  info(text: string): void;
  progress(phase: string, done: number, total: number): void;
  endProgress(): void;
}

export function makeOutput(json: boolean): Output {
  const tty = process.stderr.isTTY === true;
  let progressShown = false;
  return {
    json,
    result(value, human) {
      process.stdout.write(json ? `${JSON.stringify(value)}\n` : `${human}\n`);
    },
    info(text) {
      if (!json) process.stderr.write(`${text}\n`);
    },
    progress(phase, done, total) {
      if (!tty) return;
      const pct = total > 0 ? Math.floor((done / total) * 100) : 0;
      const width = 30;
      const filled = Math.round((pct / 100) * width);
      process.stderr.write(`\r${phase.padEnd(10)} [${'#'.repeat(filled)}${' '.repeat(width - filled)}] ${String(pct).padStart(3)}%`);
      progressShown = true;
    },
    endProgress() {
      if (progressShown) process.stderr.write('\n');
      progressShown = false;
    },
  };
}

export class UsageError extends SnapstoreError {
  constructor(message: string) {
    super('USAGE', message);
  }
}

/** Codes meaning "the input was wrong" (exit 2) rather than "the operation failed" (exit 1). */
const INPUT_CODES = new Set([
  'USAGE',
  'CONFIG_INVALID',
  'BAD_LOCATION',
  'INVALID_ARGUMENT',
  'MODE_NOT_POSSIBLE',
  'SOURCE_NOT_FOUND',
  'BAD_SOURCE',
  'NOT_CONFIGURED',
  'TARGET_EXISTS',
  'NOT_FOUND',
  'EXISTS',
  'FOREIGN_LOCATION',
  'INVALID_IMAGE_ID',
  'INVALID_RANGE',
  'CEPH_CONFIG',
  'NATIVE_UNAVAILABLE',
]);

export function exitCodeFor(err: unknown): 1 | 2 {
  return err instanceof SnapstoreError && INPUT_CODES.has(err.code) ? 2 : 1;
}

/** One line for humans; the JSON form for --json. Stack traces only with --debug. */
export function reportError(err: unknown, out: Output, debug: boolean): void {
  const code = err instanceof SnapstoreError ? err.code : 'INTERNAL';
  const message = redactSecrets(err instanceof Error ? err.message : String(err));
  if (out.json) {
    const body = err instanceof SnapstoreError ? err.toJSON() : { name: 'Error', code, message };
    process.stdout.write(`${JSON.stringify({ error: body })}\n`);
  } else {
    process.stderr.write(`snapstore: ${message} [${code}]\n`);
  }
  if (debug && err instanceof Error) process.stderr.write(`${err.stack ?? ''}\n`);
}
