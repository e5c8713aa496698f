// The settings a new training run gets for what the user leaves unset: Adam's
// learning rate, its schedule, and the run's length. A backbone that starts
// from its random initialisation (no --checkpoint) gets the from-scratch
// recipe its plugin declares (`BackboneDefinition.fromScratch`); one that
// starts from official weights gets the reference's (Medical-SAM-Adapter:
// Adam at a constant 1e-4, one epoch), under which a random backbone barely
// learns. Every setting the user gives wins. `peft train` and `peft plan`
// resolve a run through `resolveRecipe`, so both show the same run.
import { PeftError } from '../../core/errors.js';
import type { BackboneDefinition } from '../../core/registry/definitions.js';
import { lrSchedules, type LrSchedule } from '../train/lr-schedule.js';

/** Medical-SAM-Adapter's settings for a pretrained SAM. */
export const REFERENCE_RECIPE = { lr: 1e-4, lrSchedule: 'constant' as LrSchedule, epochs: 1 };

export interface Recipe {
  kind: 'from-scratch' | 'reference';
  /** Why it applies, in words: "no --checkpoint", "--checkpoint"… */
  why: string;
  /** Whose recipe it is: the backbone's id (from scratch), or "the reference's". */
  source: string;
  lr: number;
  lrSchedule: LrSchedule;
  /** The run's length: optimiser steps (a from-scratch recipe) or epochs (the reference's). */
  steps?: number;
  epochs?: number;
}

/** What the user set (undefined: not given). */
export interface RecipeSettings {
  lr?: number;
  lrSchedule?: LrSchedule;
  steps?: number;
  epochs?: number;
}

export interface ResolvedRecipe {
  recipe: Recipe;
  /** The run's settings: the user's where given, else the recipe's (`epochs` unset means one epoch). */
  options: { lr: number; lrSchedule: LrSchedule; steps?: number; epochs?: number };
  /** The flags whose value replaced the recipe's, in the order --lr, --lr-schedule, --steps, --epochs. */
  overridden: string[];
}

/** The backbone's declared from-scratch recipe, checked (a plugin's mistake is named, not trained on). */
function declaredRecipe(def: BackboneDefinition): BackboneDefinition['fromScratch'] {
  const r = def.fromScratch;
  if (r === undefined) return undefined;
  const bad = (what: string) => new PeftError(`backbone '${def.id}' declares a from-scratch recipe with ${what}; fix the plugin, or give --lr, --lr-schedule and --steps`);
  if (!(typeof r.lr === 'number' && r.lr > 0 && Number.isFinite(r.lr))) throw bad(`lr ${String(r.lr)} (must be a positive number)`);
  if (!(lrSchedules as readonly string[]).includes(r.lrSchedule)) throw bad(`lrSchedule '${String(r.lrSchedule)}' (must be one of ${lrSchedules.join(', ')})`);
  if (!(Number.isSafeInteger(r.steps) && r.steps >= 1)) throw bad(`steps ${String(r.steps)} (must be a positive integer)`);
  return r;
}

/** The recipe for a backbone that starts from official weights (`fromCheckpoint`) or from its random initialisation. */
export function recipeFor(def: BackboneDefinition, fromCheckpoint: boolean): Recipe {
  if (fromCheckpoint) return { kind: 'reference', why: '--checkpoint', source: "the reference's", ...REFERENCE_RECIPE };
  const own = declaredRecipe(def);
  if (!own) return { kind: 'reference', why: `no --checkpoint, but backbone '${def.id}' declares no from-scratch recipe`, source: "the reference's", ...REFERENCE_RECIPE };
  return { kind: 'from-scratch', why: 'no --checkpoint', source: `${def.id}'s`, lr: own.lr, lrSchedule: own.lrSchedule, steps: own.steps };
}

/**
 * The run's rate, schedule and length: each the user's when given, else the
 * recipe's. The length is one setting: --steps or --epochs (either) replaces
 * the recipe's whole length.
 */
export function resolveRecipe(def: BackboneDefinition, fromCheckpoint: boolean, user: RecipeSettings): ResolvedRecipe {
  const recipe = recipeFor(def, fromCheckpoint);
  const overridden: string[] = [];
  if (user.lr !== undefined) overridden.push('--lr');
  if (user.lrSchedule !== undefined) overridden.push('--lr-schedule');
  if (user.steps !== undefined) overridden.push('--steps');
  if (user.epochs !== undefined) overridden.push('--epochs');
  const userLength = user.steps !== undefined || user.epochs !== undefined;
  const length = userLength
    ? { ...(user.steps !== undefined ? { steps: user.steps } : {}), ...(user.epochs !== undefined ? { epochs: user.epochs } : {}) }
    : recipe.steps !== undefined
      ? { steps: recipe.steps }
      : {};
  return { recipe, options: { lr: user.lr ?? recipe.lr, lrSchedule: user.lrSchedule ?? recipe.lrSchedule, ...length }, overridden };
}

/** A learning rate as people write it: 1e-3, 3e-3, 0.05. */
export function formatLr(lr: number): string {
  if (lr >= 0.01 && lr < 1000) return String(lr);
  return lr.toExponential().replace('e+', 'e');
}

/**
 * One line for the start of training: which recipe applies, why, the
 * settings the run gets (the user's marked with their flag), and how to
 * override it.
 */
export function describeRecipe(resolved: ResolvedRecipe): string {
  const { recipe, options, overridden } = resolved;
  const mark = (flag: string) => (overridden.includes(flag) ? ` (${flag})` : '');
  let length: string;
  if (options.steps !== undefined) length = `${options.steps} step${options.steps === 1 ? '' : 's'}${mark('--steps')}`;
  else {
    const epochs = options.epochs ?? 1;
    length = `${epochs} epoch${epochs === 1 ? '' : 's'}${mark('--epochs')}`;
  }
  const name = recipe.kind === 'from-scratch' ? `from scratch (${recipe.why}), ${recipe.source}` : `${recipe.source} for pretrained weights (${recipe.why})`;
  return `recipe: ${name}: lr ${formatLr(options.lr)}${mark('--lr')}, ${options.lrSchedule}${mark('--lr-schedule')}, ${length} — any of --lr/--lr-schedule/--steps/--epochs overrides`;
}
