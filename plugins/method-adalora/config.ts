// The `adalora` method's config: SVD-form LoRA ranks, the rank budget
// schedule of the RankAllocator, its EMA factors and the orthogonal
// regulariser's weight. Validated before anything runs; every violation names
// its key. A training run fills in the schedule's lengths (run-binding.ts);
// the defaults here are for a run of 3000 steps.
import { z } from '../../src/index.js';

const beta = (what: string) =>
  z
    .number()
    .gt(0, `must be in (0, 1) (exclusive)`)
    .lt(1, `must be in (0, 1) (exclusive)`)
    .default(0.85)
    .describe(what);

export const adaloraSchema = z
  .strictObject({
    init_r: z.number().int().min(1).default(12).describe('Initial rank of every adapted matrix (rows of lora_A and lora_E)'),
    target_r: z.number().int().min(0).default(8).describe('Target average rank after pruning (<= init_r)'),
    alpha: z.number().min(0).default(1).describe('Scaling numerator (0 means r): the update is scaled by alpha / (ranknum + 1e-5)'),
    dropout: z.number().min(0).lt(1).default(0).describe('Dropout probability on the input of the SVD branch (training only)'),
    targets: z
      .array(z.string().min(1))
      .min(1)
      .default(['attn.qkv', 'attn.proj', 'mlp.fc1', 'mlp.fc2'])
      .describe("Linear sites to adapt: roles ('attn.qkv'), globs ('mlp.*') or /regex/ over paths"),
    init_warmup: z.number().int().min(0).default(500).describe('Steps before pruning starts (budget = total rank); a training run sets floor(total_step / 6) unless given'),
    final_warmup: z.number().int().min(0).default(1500).describe('Final steps at the target budget with frozen importance; a training run sets floor(total_step / 2) unless given'),
    mask_interval: z.number().int().min(1).default(10).describe('Steps between two rank allocations during the cubic schedule'),
    total_step: z.number().int().min(1).default(3000).describe("Total optimiser steps of the schedule (> init_warmup + final_warmup); a training run sets the run's steps unless given"),
    beta1: beta('EMA factor of the sensitivity |p * grad|, in (0, 1)'),
    beta2: beta('EMA factor of the uncertainty |ipt - ema|, in (0, 1)'),
    orth_reg_weight: z.number().min(0).default(0.1).describe('Weight of the orthogonal regulariser added to the loss (>= 0)'),
  })
  .superRefine((c, ctx) => {
    if (c.target_r > c.init_r) {
      ctx.addIssue({ code: 'custom', path: ['target_r'], message: `must be <= init_r (${c.init_r}), got ${c.target_r}` });
    }
    if (!(c.total_step > c.init_warmup + c.final_warmup)) {
      ctx.addIssue({
        code: 'custom',
        path: ['total_step'],
        message: `must be > init_warmup + final_warmup (${c.init_warmup} + ${c.final_warmup} = ${c.init_warmup + c.final_warmup}), got ${c.total_step}`,
      });
    }
    for (const key of c.targets) {
      if (/\[/.test(key) && !key.startsWith('/')) {
        ctx.addIssue({ code: 'custom', path: ['targets'], message: `'${key}': AdaLoRA adapts whole layers; output groups are not supported` });
      }
    }
  });

export type AdaloraConfig = z.output<typeof adaloraSchema>;
