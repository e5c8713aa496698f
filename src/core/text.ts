// Text from files and flags, made safe to print. A name read from a checkpoint,
// a dataset folder or a flag may hold terminal escape sequences (ESC [ 31 m,
// OSC titles, a carriage return that hides what came before it, bidi controls
// that reorder a line) or be a megabyte long; printed raw it rewrites the
// user's terminal or floods it. Every message the CLI prints goes through
// `printableLine` (src/cli/base-command.ts), and code that builds a message
// from file content quotes names with `quoteName` or values with `briefValue`,
// so one hostile name never takes more than a few dozen characters of a line.

/** Longest name `quoteName` shows whole (longer ones are cut, with their length said). */
export const MAX_QUOTED_NAME = 120;
/** Longest line the CLI prints for an error or a warning; longer ones lose their middle. */
export const MAX_MESSAGE_LINE = 2000;

/**
 * Characters never printed as themselves: C0 controls (ESC, CR, BEL, BS, ...),
 * DEL, C1 controls (U+0080-U+009F, where CSI is U+009B), the line and
 * paragraph separators, the bidi embeddings, overrides and isolates that
 * reorder what a terminal shows, and lone surrogates.
 */
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * `s` with every unprintable character written as an escape (`\n`, `\u001b`,
 * `\u202e`), everything else unchanged. The escapes are JSON's: a JSON
 * document stays valid, with the same value, when escaped. Characters in
 * `keep` (e.g. '\n\t' for multi-line output) are left as they are.
 */
export function escapeControl(s: string, keep = ''): string {
  return s.replace(UNPRINTABLE, (c) => {
    if (keep.includes(c)) return c;
    return NAMED[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
}

/** Output text (several lines) safe for a terminal: newlines and tabs kept, every other unprintable character escaped. */
export function printableText(s: string): string {
  return escapeControl(s, '\n\t');
}

/** `end` moved back off the middle of a surrogate pair or of an escape (`\u00`, `\`). */
function safeCut(s: string, end: number): number {
  let e = Math.max(0, Math.min(end, s.length));
  if (e > 0 && e < s.length && /[\ud800-\udbff]/.test(s[e - 1]!)) e--;
  const partial = /\\(?:u[0-9a-f]{0,3})?$/.exec(s.slice(Math.max(0, e - 6), e));
  return partial ? e - partial[0].length : e;
}

/** Escaped `text` in at most `max` characters (plus a note of the original length when cut). */
function shown(text: string, max: number): string {
  // only the part that can be shown is escaped: a megabyte name costs no more than a short one
  const esc = escapeControl(text.length > max ? text.slice(0, max + 1) : text);
  if (esc.length <= max && text.length <= max) return esc;
  return `${esc.slice(0, safeCut(esc, max))}…(${text.length} chars)`;
}

/**
 * A name from a file or a flag, for a message: escaped, cut to `max`
 * characters, in single quotes (`'blocks.0\u001b[31m'`, `'aaaa…(1048576 chars)'`).
 */
export function quoteName(name: unknown, max = MAX_QUOTED_NAME): string {
  return `'${shown(typeof name === 'string' ? name : String(name), max)}'`;
}

/** Any value from a file, for a message: a string as it is, anything else as JSON; escaped and cut to `max` characters, unquoted. */
export function briefValue(v: unknown, max = 80): string {
  let text: string;
  try {
    text = typeof v === 'string' ? v : (JSON.stringify(v) ?? String(v));
  } catch {
    text = String(v);
  }
  return shown(text, max);
}

/**
 * A message as one printable line: runs of white space (newlines included)
 * become one space, every other unprintable character is escaped, and a line
 * longer than `max` keeps its start and its end around a note of how much was cut.
 */
export function printableLine(message: string, max = MAX_MESSAGE_LINE): string {
  const line = escapeControl(message.replace(/\s+/g, ' ').trim());
  if (line.length <= max) return line;
  const keep = Math.floor((max - 40) / 2);
  const head = safeCut(line, keep);
  let tail = line.length - keep;
  if (/[\udc00-\udfff]/.test(line[tail] ?? '')) tail++;
  return `${line.slice(0, head)} …(${tail - head} chars cut)… ${line.slice(tail)}`;
}
