#!/usr/bin/env node
// The `snapstore` command. Exit 0: done; 1: the operation failed (after cleaning up); 2: bad input or
// config. Ctrl-C aborts the running operation, which then cleans up; a second Ctrl-C exits at once.
import { parseInvocation, USAGE } from './cli/args.js';
import { exitCodeFor, makeOutput, reportError } from './cli/output.js';
import { SnapstoreError } from './errors.js';
import { VERSION } from './index.js';

async function main(argv: string[]): Promise<number> {
  const out = makeOutput(argv.includes('--json'));
  const debug = argv.includes('--debug');
  const abort = new AbortController();
  const onSigint = () => {
    if (abort.signal.aborted) process.exit(130);
    out.info('snapstore: interrupted; cleaning up (Ctrl-C again to exit now)');
    abort.abort(new SnapstoreError('CANCELLED', 'interrupted (SIGINT)'));
  };
  process.on('SIGINT', onSigint);
  try {
    const inv = parseInvocation(argv);
    if (inv === 'help') {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    if (inv === 'version') {
      out.result({ version: VERSION }, VERSION);
      return 0;
    }
    const { runCommand } = await import('./cli/commands.js');
    await runCommand(inv, out, abort.signal);
    return 0;
  } catch (err) {
    out.endProgress();
    reportError(err, out, debug);
    return exitCodeFor(err);
  } finally {
    process.off('SIGINT', onSigint);
  }
}

process.exitCode = await main(process.argv.slice(2));
