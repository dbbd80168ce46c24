// The root of every error snapstore throws. Flystorage-style: a stable `code` callers switch on, the
// `context` that explains it (never a secret), and the original `cause`.

export interface ErrorContext {
  [key: string]: string | number | boolean | null | undefined | string[];
}

export class SnapstoreError extends Error {
  /** Stable machine-readable code, e.g. `NOT_FOUND`, `BAD_LOCATION`, `GLANCE_LOCATIONS_NOT_ALLOWED`. */
  readonly code: string;
  readonly context: ErrorContext;

  constructor(code: string, message: string, options: { cause?: unknown; context?: ErrorContext } = {}) {
    super(redactSecrets(message), options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.context = options.context ?? {};
  }

  toJSON(): { name: string; code: string; message: string; context: ErrorContext } {
    return { name: this.name, code: this.code, message: this.message, context: this.context };
  }
}

const SECRET_PATTERNS: RegExp[] = [
  // cephx keys are base64 of 28 bytes (40 characters ending in ==)
  /[A-Za-z0-9+/]{38}==/g,
  // userinfo in URLs: scheme://user:secret@host
  /(\b[a-z][a-z0-9+.-]*:\/\/)[^/@\s:]+:[^/@\s]+@/gi,
  // tokens in headers or query strings
  /(x-auth-token|x-subject-token|token|password|key|secret)(["']?\s*[:=]\s*["']?)[^\s"',&;]+/gi,
];

/** Removes cephx keys, URL credentials and token/password values from a text meant for humans. */
export function redactSecrets(text: string): string {
  return text
    .replace(SECRET_PATTERNS[0]!, '[redacted]')
    .replace(SECRET_PATTERNS[1]!, '$1[redacted]@')
    .replace(SECRET_PATTERNS[2]!, '$1$2[redacted]');
}
