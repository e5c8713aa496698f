// The one mechanism every command's numeric and path flags go through:
// integers within bounds (`--batch 0`, `-2`, `1.5`, `1e9` are refused with
// the rule, not passed on to crash in a model build), and paths that are not
// empty (`--checkpoint ''` would otherwise be taken as "not given"). A bad
// value is one line: `--batch must be an integer from 1 to 1024, got 0`
// (base-command.ts turns oclif's wrapper around it into that line).
import { Flags } from '@oclif/core';
import { MAX_BATCH, MAX_IMAGE_SIZE, MAX_STEPS, MIN_IMAGE_SIZE } from '../app/runs/run-folder-schema.js';
import { briefValue } from '../core/text.js';

/** Bounds of the flags several commands share, beside the run-folder limits they mirror. */
export const FLAG_LIMITS = {
  batch: { min: 1, max: MAX_BATCH },
  steps: { min: 1, max: MAX_STEPS },
  imageSize: { min: MIN_IMAGE_SIZE, max: MAX_IMAGE_SIZE },
  /** Any whole number: a method's rank or hidden width (its schema says the least, the size check `checkMethodFits` the most), a seed. */
  integer: { min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER },
  count: { min: 0, max: Number.MAX_SAFE_INTEGER },
  positive: { min: 1, max: Number.MAX_SAFE_INTEGER },
} as const;

/** The rule an integer flag states in its message. */
function integerRule(min: number, max: number): string {
  if (max === Number.MAX_SAFE_INTEGER) return min === Number.MIN_SAFE_INTEGER ? 'an integer' : `an integer >= ${min}`;
  return `an integer from ${min} to ${max}`;
}

/** Parses `text` as a whole decimal integer in [min, max]; throws the flag's one-line message otherwise. */
export function parseIntegerFlag(flag: string, text: string, min: number, max: number): number {
  const n = /^\s*[+-]?\d+\s*$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new Error(`--${flag} must be ${integerRule(min, max)}, got ${text === '' ? "''" : briefValue(text)}`);
  return n;
}

/** An integer flag in [min, max] (oclif's own options: description, default, char, aliases…). */
export function integerFlag(bounds: { min: number; max?: number }) {
  const max = bounds.max ?? Number.MAX_SAFE_INTEGER;
  return Flags.custom<number>({
    parse: async (input, _context, opts) => parseIntegerFlag(opts.name, input, bounds.min, max),
  });
}

/** A path flag (file or folder): refused when empty or blank, since '' would silently mean "not given". */
export const pathFlag = Flags.custom<string>({
  parse: async (input, _context, opts) => {
    if (!input.trim()) throw new Error(`--${opts.name} must name a file or folder, got ${input === '' ? "''" : briefValue(input)}`);
    if (input.includes('\0')) throw new Error(`--${opts.name} must not contain a NUL character`);
    return input;
  },
});
