// Regular expressions that come from files and flags: Hugging Face PEFT's
// `target_modules`, `exclude_modules`, `modules_to_save`, `layers_pattern`,
// `feedforward_modules` and the keys of `rank_pattern`/`alpha_pattern`, and
// peftjs targets (`/blocks\.[0-3]\./`, `mlp.*`) from flags, run.json or an
// adapter. JavaScript's RegExp backtracks: `(.*.*)*X` against a module path
// runs for longer than anyone waits, at 100% CPU. These are compiled by RE2's
// engine instead (re2js, a pure-JavaScript port of RE2: matching time is
// linear in the text, whatever the pattern), with bounds on what a pattern may
// cost to compile and run:
//   - at most MAX_PATTERN_LENGTH characters;
//   - counted repetitions (`{n}`, `{n,m}`) of at most MAX_REPEAT;
//   - a compiled program of at most MAX_PROGRAM_SIZE instructions.
// RE2's syntax is Python's and JavaScript's without backreferences and
// lookaround (`(?=`, `(?<=`, `\1`), which have no linear-time algorithm and
// which no module-name pattern needs; a pattern that uses them, or that does
// not parse, or that is not a string, is a PeftError naming where it was read
// (the file and the key) and why.
import { RE2JS } from 're2js';
import { PeftError } from './errors.js';
import { briefValue, quoteName } from './text.js';

/** Longest pattern read (characters). */
export const MAX_PATTERN_LENGTH = 4096;
/** Largest count of a counted repetition (`a{100}`). */
export const MAX_REPEAT = 100;
/** Largest compiled program (RE2 instructions): bounds the work per character matched. */
export const MAX_PROGRAM_SIZE = 20_000;

/** A compiled pattern. Matching takes time linear in the text. */
export interface SafePattern {
  /** The pattern as written in its source. */
  readonly source: string;
  /** Whether it matches anywhere in `text` (as RegExp.prototype.test). */
  test(text: string): boolean;
  /** Whether it matches all of `text` (Python's `re.fullmatch`). */
  fullMatch(text: string): boolean;
  /** The first match's groups (index 0: the whole match; an unmatched group is undefined), or null. */
  exec(text: string): (string | undefined)[] | null;
}

export interface PatternOptions {
  /**
   * JavaScript-style flags: `i` (case-insensitive), `s` (`.` matches newlines),
   * `m` (`^`/`$` at line ends); `u` is accepted (RE2 always reads Unicode).
   */
  flags?: string;
  /**
   * Builds the regular expression actually compiled around the checked
   * pattern, e.g. PEFT's `^(.*\.)?(${key})$`. The pattern alone is checked
   * first, so an error names it, not the wrapper.
   */
  wrap?: (pattern: string) => string;
}

const FLAG_BITS: Record<string, number> = { i: RE2JS.CASE_INSENSITIVE, s: RE2JS.DOTALL, m: RE2JS.MULTILINE, u: 0 };

/** Compiled programs by flags and final source: module paths are matched against the same few patterns many times. */
const cache = new Map<string, RE2JS>();
const CACHE_SIZE = 256;

function fail(where: string, source: string, why: string): never {
  throw new PeftError(`${where}: ${quoteName(source)} is not a pattern peftjs reads (${why}; patterns use RE2 syntax: no lookaround or backreferences)`);
}

function compile(where: string, shownSource: string, regex: string, flags: number): RE2JS {
  const key = `${flags}\u0000${regex}`;
  const hit = cache.get(key);
  if (hit) return hit;
  let re: RE2JS;
  try {
    re = RE2JS.compile(regex, flags);
  } catch (err) {
    // re2js says e.g. "error parsing regexp: missing closing ): `(`"
    const message = (err as Error).message.replace(/^error parsing regexp: /, '');
    return fail(where, shownSource, briefValue(message, 160));
  }
  if (re.programSize() > MAX_PROGRAM_SIZE) fail(where, shownSource, `it compiles to ${re.programSize()} instructions, more than ${MAX_PROGRAM_SIZE}`);
  if (cache.size >= CACHE_SIZE) cache.delete(cache.keys().next().value!);
  cache.set(key, re);
  return re;
}

/** The first counted repetition in `source` above MAX_REPEAT (scanned before compiling: RE2 allows 1000, whose programs take long to build). */
function largeRepeat(source: string): string | undefined {
  for (const m of source.matchAll(/\{(\d+)(?:,(\d*))?\}/g)) {
    if (Number(m[1]) > MAX_REPEAT || (m[2] !== undefined && m[2] !== '' && Number(m[2]) > MAX_REPEAT)) return m[0].length > 24 ? `${m[0].slice(0, 24)}…` : m[0];
  }
  return undefined;
}

/**
 * Compiles a pattern read from a file or a flag with RE2's linear-time
 * engine. `where` names its origin for errors (`<file>: 'target_modules'`).
 * A value that is not a string, too long, malformed, or too costly is a
 * PeftError naming `where`.
 */
export function compileUntrustedPattern(source: unknown, where: string, options: PatternOptions = {}): SafePattern {
  if (typeof source !== 'string') throw new PeftError(`${where}: must be a string (a regular expression), got ${briefValue(source)}`);
  if (source.length > MAX_PATTERN_LENGTH) fail(where, source, `${source.length} characters, more than ${MAX_PATTERN_LENGTH}`);
  let flags = 0;
  for (const f of options.flags ?? '') {
    if (!Object.hasOwn(FLAG_BITS, f)) fail(where, source, `flag '${f}' is not one of i, m, s, u`);
    flags |= FLAG_BITS[f]!;
  }
  const big = largeRepeat(source);
  if (big) fail(where, source, `the repetition ${big} counts above ${MAX_REPEAT}`);
  // the pattern alone first: a wrapper must not turn a malformed key into a valid expression
  const alone = compile(where, source, source, flags);
  const re = options.wrap ? compile(where, source, options.wrap(source), flags) : alone;
  return {
    source,
    test: (text) => re.test(text),
    fullMatch: (text) => re.testExact(text),
    exec: (text) => {
      const m = re.matcher(text);
      if (!m.find()) return null;
      const groups: (string | undefined)[] = [];
      for (let g = 0; g <= m.groupCount(); g++) groups.push(m.group(g) ?? undefined);
      return groups;
    },
  };
}

/** `text` with RE2's (and JavaScript's) special characters escaped, for building a pattern that matches it literally. */
export function escapePattern(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
