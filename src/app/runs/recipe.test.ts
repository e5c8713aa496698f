// The recipe a run gets for what the user leaves unset: the backbone's own
// from scratch, the reference's with a checkpoint, the user's flags winning.
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { BackboneDefinition } from '../../core/registry/definitions.js';
import { describeRecipe, formatLr, recipeFor, resolveRecipe } from './recipe.js';

/** A stand-in backbone definition: only what the recipe reads. */
function backbone(fromScratch?: BackboneDefinition['fromScratch']): BackboneDefinition {
  return {
    id: 'toy',
    summary: 'toy',
    presets: { tiny: {} },
    defaultPreset: 'tiny',
    schema: z.object({}) as never,
    create: () => {
      throw new Error('not built here');
    },
    ...(fromScratch ? { fromScratch } : {}),
  };
}

const declared = backbone({ lr: 1e-3, lrSchedule: 'cosine', steps: 3000 });

describe('resolveRecipe', () => {
  it("no flags, no checkpoint: the backbone's from-scratch recipe", () => {
    const r = resolveRecipe(declared, false, {});
    expect(r.recipe.kind).toBe('from-scratch');
    expect(r.options).toEqual({ lr: 1e-3, lrSchedule: 'cosine', steps: 3000 });
    expect(r.overridden).toEqual([]);
    expect(describeRecipe(r)).toBe("recipe: from scratch (no --checkpoint), toy's: lr 1e-3, cosine, 3000 steps — any of --lr/--lr-schedule/--steps/--epochs overrides");
  });

  it("with --checkpoint: the reference's (Adam 1e-4, constant, one epoch), whatever the backbone declares", () => {
    const r = resolveRecipe(declared, true, {});
    expect(r.recipe.kind).toBe('reference');
    expect(r.options).toEqual({ lr: 1e-4, lrSchedule: 'constant' });
    expect(describeRecipe(r)).toBe("recipe: the reference's for pretrained weights (--checkpoint): lr 1e-4, constant, 1 epoch — any of --lr/--lr-schedule/--steps/--epochs overrides");
  });

  it('a flag the user gives wins, and only that setting changes', () => {
    const r = resolveRecipe(declared, false, { lr: 5e-4 });
    expect(r.options).toEqual({ lr: 5e-4, lrSchedule: 'cosine', steps: 3000 });
    expect(r.overridden).toEqual(['--lr']);
    expect(describeRecipe(r)).toMatch(/: lr 5e-4 \(--lr\), cosine, 3000 steps — /);
    const s = resolveRecipe(declared, true, { lrSchedule: 'cosine', steps: 20 });
    expect(s.options).toEqual({ lr: 1e-4, lrSchedule: 'cosine', steps: 20 });
    expect(describeRecipe(s)).toMatch(/: lr 1e-4, cosine \(--lr-schedule\), 20 steps \(--steps\) — /);
  });

  it("--epochs replaces the recipe's whole length (its steps go)", () => {
    const r = resolveRecipe(declared, false, { epochs: 2 });
    expect(r.options).toEqual({ lr: 1e-3, lrSchedule: 'cosine', epochs: 2 });
    expect(describeRecipe(r)).toMatch(/, 2 epochs \(--epochs\) — /);
  });

  it("a backbone that declares no recipe gets the reference's, and the line says why", () => {
    const r = resolveRecipe(backbone(), false, {});
    expect(r.options).toEqual({ lr: 1e-4, lrSchedule: 'constant' });
    expect(describeRecipe(r)).toMatch(/^recipe: the reference's for pretrained weights \(no --checkpoint, but backbone 'toy' declares no from-scratch recipe\): lr 1e-4, constant, 1 epoch/);
  });

  it("a plugin's malformed recipe is an error naming the backbone and the value", () => {
    expect(() => recipeFor(backbone({ lr: -1, lrSchedule: 'cosine', steps: 10 }), false)).toThrow(/backbone 'toy' declares a from-scratch recipe with lr -1/);
    expect(() => recipeFor(backbone({ lr: 1e-3, lrSchedule: 'linear' as never, steps: 10 }), false)).toThrow(/lrSchedule 'linear'/);
    expect(() => recipeFor(backbone({ lr: 1e-3, lrSchedule: 'cosine', steps: 2.5 }), false)).toThrow(/steps 2.5/);
    // with a checkpoint the declaration is not used, so not checked
    expect(recipeFor(backbone({ lr: -1, lrSchedule: 'cosine', steps: 10 }), true).kind).toBe('reference');
  });

  it('formats rates as people write them', () => {
    expect([1e-3, 3e-3, 1e-4, 1.5e-3, 0.05, 1].map(formatLr)).toEqual(['1e-3', '3e-3', '1e-4', '1.5e-3', '0.05', '1']);
  });
});
