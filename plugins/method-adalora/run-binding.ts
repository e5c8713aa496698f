// AdaLoRA's schedule follows the run it trains in: `total_step` is the run's
// optimiser steps and the warm-ups keep the reference defaults' proportions
// (500 and 1500 of 3000 steps), so `peft train --method adalora --steps 200`
// prunes to its target instead of waiting for step 3000. A key the user set
// is never changed; the others are clamped so the schema holds at any length.
import type { InjectionSite, RunBinding } from '../../src/index.js';
import type { AdaloraConfig } from './config.js';
import { budgetSchedule } from './rank-allocator.js';

export const adaloraRunBindingRule =
  'Unless set: total_step = the run\'s optimiser steps T (--steps, or epochs x batches per epoch), init_warmup = floor(T / 6), ' +
  'final_warmup = floor(T / 2) (the defaults\' 500 and 1500 of 3000), each lowered as needed so that init_warmup + final_warmup < total_step; mask_interval is kept.';

const count = (v: unknown): number | undefined => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined);

/** The keys of AdaLoRA's schedule the run's length sets (see `adaloraRunBindingRule`). */
export function bindAdaloraRun(user: Readonly<Record<string, unknown>>, run: RunBinding): Record<string, unknown> {
  // a user's total_step (even one unlike the run's) is the length the warm-ups scale with
  const T = count(user.total_step) ?? run.totalSteps;
  const userInit = count(user.init_warmup);
  const userFinal = count(user.final_warmup);
  // the pruning phase keeps its share first, then the final phase takes what is left below T
  const init = userInit ?? Math.max(0, Math.min(Math.floor(T / 6), T - 1 - (userFinal ?? 0)));
  const final = userFinal ?? Math.max(0, Math.min(Math.floor(T / 2), T - 1 - init));
  return { total_step: T, init_warmup: init, final_warmup: final };
}

const steps = (n: number) => (n === 1 ? 'step' : `${n} steps`);

/**
 * The rank budget over the run, for `peft plan`: e.g. "rank budget: 144 (12 x 12
 * matrices) until step 33, cubic down to 96 by step 100, then 96 (8 x 12) to
 * step 200 with importance frozen; masks every 10 steps while cubic, then
 * every step". When the run is shorter than `total_step`, the budget it ends at.
 */
export function describeAdaloraSchedule(c: AdaloraConfig, context: { sites: readonly InjectionSite[]; totalSteps?: number }): string[] {
  const n = context.sites.length;
  const total = c.init_r * n;
  const target = c.target_r * n;
  const T = c.total_step;
  const cubicEnd = T - c.final_warmup;
  // the schedule's own arithmetic, so the text cannot drift from what runs
  const budget = (t: number) => budgetSchedule(c, total, target, t).budget;
  const parts = [`rank budget: ${total} (${c.init_r} x ${n} ${n === 1 ? 'matrix' : 'matrices'}) until step ${c.init_warmup}`];
  if (cubicEnd > c.init_warmup) parts.push(`cubic down to ${budget(cubicEnd)} by step ${cubicEnd}`);
  if (c.final_warmup > 0) parts.push(`then ${target} (${c.target_r} x ${n}) to step ${T} with importance frozen`);
  const lines = [`${parts.join(', ')}; masks every ${steps(c.mask_interval)} while cubic${c.final_warmup > 0 ? ', then every step' : ''}`];
  lines.push(`(total_step ${T}, init_warmup ${c.init_warmup}, final_warmup ${c.final_warmup}, mask_interval ${c.mask_interval})`);
  const run = context.totalSteps;
  if (run !== undefined && run < T) lines.push(`the run stops at step ${run}, before total_step: its budget there is ${budget(run)}, not the target ${target}`);
  return lines;
}
