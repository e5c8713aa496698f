// Parameter names: this backbone uses the official segment-anything names
// (`attn.rel_pos_h`, `attn.rel_pos_w`), so official checkpoints load as they
// are. Medical-SAM-Adapter (whose fine-tuned checkpoints and this project's
// reference fixtures use its names) calls the tables `attn.rel_h` and
// `attn.rel_w`; everything else is named alike. These functions map one to
// the other, for the parity kinds and for loading MSA checkpoints.
import { PeftError } from '../../src/index.js';

const MSA_TO_OFFICIAL: [RegExp, string][] = [
  [/(^|\.)attn\.rel_h$/, '$1attn.rel_pos_h'],
  [/(^|\.)attn\.rel_w$/, '$1attn.rel_pos_w'],
];

const OFFICIAL_TO_MSA: [RegExp, string][] = [
  [/(^|\.)attn\.rel_pos_h$/, '$1attn.rel_h'],
  [/(^|\.)attn\.rel_pos_w$/, '$1attn.rel_w'],
];

function rewrite(key: string, rules: [RegExp, string][]): string {
  for (const [re, to] of rules) if (re.test(key)) return key.replace(re, to);
  return key;
}

/** `blocks.3.attn.rel_h` → `blocks.3.attn.rel_pos_h`; other keys unchanged. */
export function msaKeyToOfficial(key: string): string {
  return rewrite(key, MSA_TO_OFFICIAL);
}

/** `blocks.3.attn.rel_pos_h` → `blocks.3.attn.rel_h`; other keys unchanged. */
export function officialKeyToMsa(key: string): string {
  return rewrite(key, OFFICIAL_TO_MSA);
}

/** A copy of `entries` with every key passed through `rename` (the values are shared, not copied). */
export function renameKeys<T>(entries: Map<string, T>, rename: (key: string) => string): Map<string, T> {
  const out = new Map<string, T>();
  for (const [k, v] of entries) {
    const to = rename(k);
    if (out.has(to)) throw new PeftError(`renameKeys: '${k}' and another key both map to '${to}'`);
    out.set(to, v);
  }
  return out;
}
