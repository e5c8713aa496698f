// Flags shared by the commands that build a model (plan, train, verify…), and
// their translation into backbone and method configs.
import { Flags } from '@oclif/core';
import { PeftError } from '../core/errors.js';
import { describeConfig } from '../core/registry/config.js';
import type { MethodDefinition } from '../core/registry/definitions.js';

export const backboneFlags = {
  backbone: Flags.string({ description: 'backbone id (see `peft list backbones`)', aliases: ['net'], default: 'mobile_sam' }),
  preset: Flags.string({ description: "backbone preset (default: the backbone's own)", aliases: ['encoder'] }),
  'image-size': Flags.integer({ description: 'input image size in pixels', aliases: ['image_size'] }),
};

export const methodFlags = {
  method: Flags.string({ description: 'PEFT method id (see `peft list methods`)', aliases: ['mod'], default: 'lora' }),
  rank: Flags.integer({ description: 'LoRA rank r / AdaLoRA initial rank init_r' }),
  'target-rank': Flags.integer({ description: 'AdaLoRA target rank target_r' }),
  alpha: Flags.string({ description: 'LoRA/AdaLoRA scaling alpha' }),
  'mid-dim': Flags.integer({ description: 'Adapter hidden width (overrides mlp_ratio)', aliases: ['mid_dim'] }),
  targets: Flags.string({ description: 'sites to adapt, comma-separated (e.g. "attn.qkv[q,v],mlp.*")' }),
  set: Flags.string({ description: 'any method config key: --set key=value (JSON value), repeatable', multiple: true }),
};

function parseValue(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

/** Splits "attn.qkv[q,v],mlp.*" on commas outside brackets. */
export function splitTargets(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of text) {
    if (ch === '[') depth++;
    if (ch === ']') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur.trim());
      cur = '';
    } else cur += ch;
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}

export interface MethodFlagValues {
  rank?: number;
  'target-rank'?: number;
  alpha?: string;
  'mid-dim'?: number;
  targets?: string;
  set?: string[];
}

/** The method config the flags describe; a flag the method has no key for is an error naming both. */
export function methodConfigFromFlags(def: MethodDefinition, flags: MethodFlagValues): Record<string, unknown> {
  const keys = new Set(describeConfig(def.schema).map((k) => k.key));
  const config: Record<string, unknown> = {};
  const put = (flag: string, candidates: string[], value: unknown) => {
    if (value === undefined) return;
    const key = candidates.find((k) => keys.has(k));
    if (!key) throw new PeftError(`--${flag} does not apply to method '${def.id}' (its keys: ${[...keys].join(', ')})`);
    config[key] = value;
  };
  put('rank', ['r', 'init_r', 'rank'], flags.rank);
  put('target-rank', ['target_r', 'target_rank'], flags['target-rank']);
  put('alpha', ['alpha', 'lora_alpha'], flags.alpha === undefined ? undefined : parseValue(flags.alpha));
  put('mid-dim', ['mid_dim'], flags['mid-dim']);
  put('targets', ['targets', 'target_modules'], flags.targets === undefined ? undefined : splitTargets(flags.targets));
  for (const item of flags.set ?? []) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new PeftError(`--set '${item}': expected key=value`);
    const key = item.slice(0, eq).trim();
    if (!keys.has(key)) throw new PeftError(`--set '${key}': method '${def.id}' has no such key (its keys: ${[...keys].join(', ')})`);
    config[key] = parseValue(item.slice(eq + 1));
  }
  return config;
}

/** Backbone config overrides from the flags. */
export function backboneOverrides(flags: { 'image-size'?: number }): Record<string, unknown> {
  return flags['image-size'] === undefined ? {} : { img_size: flags['image-size'] };
}
