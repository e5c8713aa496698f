/**
 * An error caused by the user's input (a flag, a file, a config value). The CLI
 * prints its message as one line and exits 2; no stack trace is shown.
 */
export class PeftError extends Error {
  override name = 'PeftError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** What went wrong, for the brackets of a one-line message: the error's code (ENOENT, EACCES, ...) when it has one, else its message. */
export function errorReason(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
}
