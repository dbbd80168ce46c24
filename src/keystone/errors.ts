// The keystone layer's errors. Each names where the credentials came from (the source) and Keystone's URL,
// never a password, secret or token: texts from Keystone are scrubbed of the secrets this process holds.
import { SnapstoreError, type ErrorCode, type ErrorOptions } from '../errors.js';

export class KeystoneError extends SnapstoreError {
  constructor(code: Extract<ErrorCode, `KEYSTONE_${string}`>, message: string, options: ErrorOptions = {}) {
    super(code, message, options);
  }
}

/** Removes every secret in `secrets` (passwords, application credential secrets, tokens) from `text`. */
export function scrub(text: string, secrets: ReadonlyArray<string | undefined>): string {
  let out = text;
  for (const s of secrets) if (s && s.length >= 4) out = out.split(s).join('[redacted]');
  return out;
}
