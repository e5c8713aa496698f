// AdaLoRA's run binding: the schedule follows the run's length in the
// reference defaults' proportions, never overrides a key the user set, and
// always gives a config the schema accepts; and the schedule as `peft plan`
// describes it.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bindMethodConfig, type InjectionSite } from '../../src/index.js';
import { adaloraMethod } from './index.js';
import { adaloraSchema } from './config.js';
import { bindAdaloraRun, describeAdaloraSchedule } from './run-binding.js';

const bind = (user: Record<string, unknown>, totalSteps: number) => bindMethodConfig(adaloraMethod, user, { totalSteps });

describe('AdaLoRA run binding', () => {
  it("keeps the defaults' proportions: a 3000-step run gets exactly the defaults, a 200-step run 33 and 100", () => {
    const defaults = adaloraSchema.parse({});
    expect(bindAdaloraRun({}, { totalSteps: 3000 })).toEqual({ total_step: 3000, init_warmup: defaults.init_warmup, final_warmup: defaults.final_warmup });
    expect(bindAdaloraRun({}, { totalSteps: 200 })).toEqual({ total_step: 200, init_warmup: 33, final_warmup: 100 });
    expect(bind({}, 200).config).toMatchObject({ total_step: 200, init_warmup: 33, final_warmup: 100, mask_interval: 10 });
  });

  it('gives a valid config for any run length, with or without warm-ups the user set', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 100_000 }), fc.option(fc.integer({ min: 0, max: 50 }), { nil: undefined }), (T, final) => {
        const user = final === undefined || final >= T ? {} : { final_warmup: final };
        const { config } = bind(user, T);
        expect(config.total_step).toBe(T);
        expect(config.init_warmup + config.final_warmup).toBeLessThan(T);
        if (final !== undefined && final < T) expect(config.final_warmup).toBe(final);
      }),
    );
  });

  it("a key the user set wins; the warm-ups scale with the user's total_step", () => {
    expect(bind({ total_step: 600 }, 200)).toMatchObject({ config: { total_step: 600, init_warmup: 100, final_warmup: 300 }, bound: { init_warmup: 100, final_warmup: 300 } });
    expect(bind({ init_warmup: 10, final_warmup: 20, mask_interval: 5 }, 200).config).toMatchObject({ total_step: 200, init_warmup: 10, final_warmup: 20, mask_interval: 5 });
    // a warm-up longer than the run is the user's to fix, named
    expect(() => bind({ init_warmup: 500 }, 200)).toThrow(/method 'adalora' \(total_step=200, final_warmup=0 from the run's 200 steps\): invalid config 'total_step': must be > init_warmup \+ final_warmup \(500 \+ 0 = 500\), got 200/);
  });
});

describe('AdaLoRA schedule description', () => {
  const sites = Array.from({ length: 12 }, (_, i): InjectionSite => ({ kind: 'linear', path: `blocks.${i}.attn.qkv`, role: 'attn.qkv', in: 8, out: 24 }));

  it('states the budget, the cubic phase and the final phase as the schedule runs them', () => {
    const config = bind({}, 200).config;
    const [first, second] = describeAdaloraSchedule(config, { sites, totalSteps: 200 });
    expect(first).toBe('rank budget: 144 (12 x 12 matrices) until step 33, cubic down to 96 by step 100, then 96 (8 x 12) to step 200 with importance frozen; masks every 10 steps while cubic, then every step');
    expect(second).toBe('(total_step 200, init_warmup 33, final_warmup 100, mask_interval 10)');
  });

  it('says when the run stops before the schedule reaches its target', () => {
    const config = bind({ total_step: 3000 }, 200).config;
    const lines = describeAdaloraSchedule(config, { sites, totalSteps: 200 });
    expect(lines.at(-1)).toBe('the run stops at step 200, before total_step: its budget there is 144, not the target 96');
  });
});
