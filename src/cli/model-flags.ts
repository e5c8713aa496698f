// Flags shared by the commands that build a model (plan, train, verify…), and
// their translation into a backbone request and a method request. Which config
// key a common flag sets is the method's own declaration (`flagKeys`).
import { Flags } from '@oclif/core';
import { DEFAULT_BACKBONE, DEFAULT_METHOD } from '../builtins.js';
import { PeftError } from '../core/errors.js';
import { FLAG_LIMITS, integerFlag } from './flag-values.js';
import type { BackboneDefinition, MethodDefinition } from '../core/registry/definitions.js';
import { methodConfigFromFlags as bindFlags, type MethodFlagValues } from '../core/registry/method-config.js';

export const backboneFlags = {
  backbone: Flags.string({ description: 'backbone id (see `peft list backbones`)', aliases: ['net'], default: DEFAULT_BACKBONE }),
  preset: Flags.string({ description: "backbone preset (default: its CPU-sized 'tiny' if it has one, else the backbone's default)", aliases: ['encoder'] }),
  'image-size': integerFlag(FLAG_LIMITS.imageSize)({ description: `input image size in pixels (${FLAG_LIMITS.imageSize.min} to ${FLAG_LIMITS.imageSize.max})`, aliases: ['image_size'] }),
};

export const methodFlags = {
  method: Flags.string({ description: 'PEFT method id (see `peft list methods`)', aliases: ['mod'], default: DEFAULT_METHOD }),
  rank: integerFlag(FLAG_LIMITS.integer)({ description: "the method's rank (LoRA r, AdaLoRA init_r; `peft info <method>` shows what each flag sets)" }),
  'target-rank': integerFlag(FLAG_LIMITS.integer)({ description: "the method's target rank after pruning (AdaLoRA target_r)" }),
  alpha: Flags.string({ description: "the method's scaling numerator (LoRA/AdaLoRA alpha)" }),
  'mid-dim': integerFlag(FLAG_LIMITS.integer)({ description: "the method's hidden width (Adapter mid_dim, overriding mlp_ratio)", aliases: ['mid_dim'] }),
  targets: Flags.string({ description: 'sites to adapt, comma-separated (e.g. "attn.qkv[q,v],mlp.*")' }),
  set: Flags.string({ description: 'any method config key: --set key=value (JSON value), repeatable', multiple: true }),
};

/** The run-length flags of `peft train`, which `peft plan` takes too (a method's schedule follows them). */
export const runLengthFlags = {
  batch: integerFlag(FLAG_LIMITS.batch)({ char: 'b', description: `batch size (1 to ${FLAG_LIMITS.batch.max})`, default: 2 }),
  epochs: integerFlag(FLAG_LIMITS.steps)({ description: "epochs to train (default: the recipe's run length: the backbone's from-scratch steps, or 1 epoch with --checkpoint)" }),
  steps: integerFlag(FLAG_LIMITS.steps)({ description: "optimiser steps to train in all (overrides --epochs; default: the recipe's)" }),
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

export interface MethodFlagInput {
  rank?: number;
  'target-rank'?: number;
  alpha?: string;
  'mid-dim'?: number;
  targets?: string;
  set?: string[];
}

/** The common method flags' values, parsed (alpha and --set values as JSON, targets split), for any method. */
export function methodFlagValues(flags: MethodFlagInput): MethodFlagValues {
  const set: Record<string, unknown> = {};
  for (const item of flags.set ?? []) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new PeftError(`--set '${item}': expected key=value`);
    set[item.slice(0, eq).trim()] = parseValue(item.slice(eq + 1));
  }
  return {
    rank: flags.rank,
    'target-rank': flags['target-rank'],
    alpha: flags.alpha === undefined ? undefined : parseValue(flags.alpha),
    'mid-dim': flags['mid-dim'],
    targets: flags.targets === undefined ? undefined : splitTargets(flags.targets),
    set,
  };
}

/** The method config the flags describe; a flag the method does not bind is an error naming the flag, the method and the flags it binds. */
export function methodConfigFromFlags(def: MethodDefinition, flags: MethodFlagInput): Record<string, unknown> {
  return bindFlags(def, methodFlagValues(flags));
}

/** Backbone config overrides from the flags, through the keys the backbone binds; an unbound flag is an error naming both. */
export function backboneOverrides(def: Pick<BackboneDefinition, 'id' | 'flagKeys'>, flags: { 'image-size'?: number }): Record<string, unknown> {
  if (flags['image-size'] === undefined) return {};
  const key = def.flagKeys?.['image-size'];
  if (!key) throw new PeftError(`--image-size does not apply to backbone '${def.id}' (it binds no key to it; set its size through a preset)`);
  return { [key]: flags['image-size'] };
}
