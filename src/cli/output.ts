// Where the command's words go: with --json exactly one JSON object on stdout and nothing else there;
// human text and progress on stderr (progress only when stderr is a terminal).
import { asSnapstoreError, redactSecrets, SnapstoreError } from '../errors.js';

export { exitCodeFor } from '../errors.js';

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

/** One line for humans; the JSON form for --json. Stack traces only with --debug (secrets scrubbed there too). */
export function reportError(err: unknown, out: Output, debug: boolean): void {
  const e = asSnapstoreError(err);
  if (out.json) {
    process.stdout.write(`${JSON.stringify({ error: e.toJSON() })}\n`);
  } else {
    process.stderr.write(`snapstore: ${e.message} [${e.code}]\n`);
  }
  if (debug && err instanceof Error) process.stderr.write(`${redactSecrets(err.stack ?? '')}\n`);
}
