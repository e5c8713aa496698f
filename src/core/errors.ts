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
