// The generic mechanisms behind the common method flags (`flagKeys`) and the
// run binding (`bindRun`), over hand-written definitions: the key each flag
// sets is the method's declaration, and a bound key never overrides a user's.
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { PeftError } from '../errors.js';
import type { MethodDefinition } from './definitions.js';
import { bindMethodConfig, checkFlagKeys, describeFlagKeys, methodConfigFromFlags } from './method-config.js';

const schedule = z
  .strictObject({
    size: z.number().int().min(1).default(4),
    scale: z.number().default(1),
    length: z.number().int().min(1).default(100),
    warmup: z.number().int().min(0).default(10),
  })
  .refine((c) => c.warmup < c.length, { path: ['warmup'], message: 'must be < length' });

function method(extra: Partial<MethodDefinition> = {}): MethodDefinition {
  return { id: 'scaled', summary: 'test method', schema: schedule, create: () => ({}) as never, ...extra };
}

describe('flag bindings (flagKeys)', () => {
  const def = method({ flagKeys: { rank: 'size', alpha: 'scale' } });

  it('a flag sets the key its method binds it to, and nothing else', () => {
    expect(methodConfigFromFlags(def, { rank: 8, alpha: 2 })).toEqual({ size: 8, scale: 2 });
    expect(methodConfigFromFlags(def, {})).toEqual({});
  });

  it('a flag the method does not bind is refused in one line naming the flag, the method and its flags', () => {
    expect(() => methodConfigFromFlags(def, { 'target-rank': 2 })).toThrow(PeftError);
    expect(() => methodConfigFromFlags(def, { 'target-rank': 2 })).toThrow("--target-rank does not apply to method 'scaled' (it binds --rank (size), --alpha (scale); any key with --set key=value)");
    // no key guessing: a schema key named like the flag is not enough
    const guessable = method({ schema: z.strictObject({ r: z.number().default(1) }) });
    expect(() => methodConfigFromFlags(guessable, { rank: 2 })).toThrow("--rank does not apply to method 'scaled' (it binds no flags; any key with --set key=value)");
    expect(describeFlagKeys(guessable)).toBe('no flags');
  });

  it("a flagKeys entry that names no key of the method's schema, or no common flag, is the plugin's error, named", () => {
    const wrong = method({ flagKeys: { rank: 'rank' } });
    expect(() => methodConfigFromFlags(wrong, {})).toThrow("method 'scaled': flagKeys binds --rank to 'rank', which is not a key of its config (size, scale, length, warmup)");
    const odd = method({ flagKeys: { depth: 'size' } as never });
    expect(() => checkFlagKeys(odd)).toThrow("method 'scaled': flagKeys names 'depth', not a common flag (rank, target-rank, alpha, mid-dim, targets)");
    expect(() => checkFlagKeys(def)).not.toThrow();
  });

  it('--set names any schema key, wins over a flag on the same key, and refuses a key the schema lacks', () => {
    expect(methodConfigFromFlags(def, { rank: 8, set: { size: 3, length: 50 } })).toEqual({ size: 3, length: 50 });
    expect(() => methodConfigFromFlags(def, { set: { lenght: 5 } })).toThrow("--set 'lenght': method 'scaled' has no such key (its keys: size, scale, length, warmup)");
  });
});

describe('run binding (bindRun)', () => {
  const def = method({ bindRun: (_user, run) => ({ length: run.totalSteps, warmup: Math.floor(run.totalSteps / 5) }) });

  it('fills in the keys the user left unset, and validates the result', () => {
    expect(bindMethodConfig(def, {}, { totalSteps: 200 })).toEqual({ config: { size: 4, scale: 1, length: 200, warmup: 40 }, bound: { length: 200, warmup: 40 } });
  });

  it('never replaces a key the user set (by flag, --set or a saved run config)', () => {
    expect(bindMethodConfig(def, { length: 1000 }, { totalSteps: 200 }).config).toMatchObject({ length: 1000, warmup: 40 });
    expect(bindMethodConfig(def, { length: 1000, warmup: 5 }, { totalSteps: 200 }).bound).toEqual({});
  });

  it('replaces a base (an adapter\'s saved config) but not the user\'s keys over it', () => {
    const base = { size: 2, length: 3000, warmup: 500 };
    expect(bindMethodConfig(def, {}, { totalSteps: 200 }, base).config).toEqual({ size: 2, scale: 1, length: 200, warmup: 40 });
    expect(bindMethodConfig(def, { size: 6 }, undefined, base).config).toEqual({ size: 6, scale: 1, length: 3000, warmup: 500 });
  });

  it('without a run (nothing trains) the config is the schema\'s defaults under the user\'s keys', () => {
    expect(bindMethodConfig(def, { size: 2 })).toEqual({ config: { size: 2, scale: 1, length: 100, warmup: 10 }, bound: {} });
    expect(bindMethodConfig(method(), {}, { totalSteps: 7 }).bound).toEqual({});
  });

  it('a bound config that fails validation names the key and where the bound values came from', () => {
    expect(() => bindMethodConfig(def, { warmup: 300 }, { totalSteps: 200 })).toThrow("method 'scaled' (length=200 from the run's 200 steps): invalid config 'warmup': must be < length");
    expect(() => bindMethodConfig(def, {}, { totalSteps: 0 })).toThrow("method 'scaled': a run must have at least 1 step, got 0");
  });
});
