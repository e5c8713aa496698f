// AdaLoRA's own laws (its `laws`, run by `peft verify adalora` after the core
// laws) and broken variants of it that they must catch: a wrong budget
// schedule, a mask that touches A, an allocator that ignores B's importance,
// a wrong parameter formula; no tensor leaks across steps.
import { describe, expect, it } from 'vitest';
import {
  LawTally,
  Registry,
  Subject,
  formatLawResult,
  lawsFor,
  methodLaws,
  tf,
  trainStep,
  verifyMethod,
  type Law,
  type LayerInjector,
  type MethodDefinition,
  type StepContext,
} from '../../src/index.js';
import { adaloraMethod, register } from './index.js';
import { adaloraLaws } from './laws.js';

const registry = new Registry();
register(registry);

/** AdaLoRA under another id, with some injector members replaced (its own laws come along in the spread). */
function broken(id: string, override: (inner: LayerInjector) => Partial<LayerInjector> & Record<string, unknown>): MethodDefinition {
  return {
    ...adaloraMethod,
    id,
    aliases: [],
    create: (config) => {
      const inner = adaloraMethod.create(config);
      return Object.assign(Object.create(inner) as LayerInjector, override(inner));
    },
  };
}

async function failing(def: MethodDefinition, lawName: RegExp, laws: Law[]): Promise<string> {
  const law = laws.find((l) => lawName.test(l.name));
  expect(law, `no law matching ${lawName}`).toBeDefined();
  const r = await law!.run({ numRuns: 10, seed: 3 });
  expect(r.ok).toBe(false);
  expect(r.counterexample).toBeTruthy();
  return r.error!;
}

describe('adalora under peft verify', () => {
  it('brings its own laws, run after the core laws', () => {
    const names = lawsFor(adaloraMethod).map((l) => l.name);
    const core = methodLaws(adaloraMethod).map((l) => l.name);
    const own = adaloraLaws(adaloraMethod).map((l) => l.name);
    expect(own.length).toBeGreaterThan(5);
    expect(names).toEqual([...core, ...own]);
  });

  it('passes every law, by its alias, on configs drawn from its schema (the default first)', async () => {
    const out = await verifyMethod(registry, 'sam_adalora', { numRuns: 4, seed: 5 });
    expect(out.method).toBe('adalora');
    expect(out.results.filter((r) => !r.ok).map(formatLawResult)).toEqual([]);
    expect(out.results.filter((r) => r.skipped)).toEqual([]);
  });

  it('leaks no tensor across training steps (importance updates and masks included)', () => {
    const config = { init_warmup: 0, final_warmup: 1, mask_interval: 1, total_step: 4, init_r: 3, target_r: 1 };
    const s = Subject.create(adaloraMethod, { seed: 2, depth: 2, dim: 6, hidden: 8, batch: 2, tokens: 3 }, config, new LawTally());
    s.compose(new LawTally());
    const upstream = tf.randomUniform([2, 3, 6], -1, 1, 'float32', 1);
    trainStep(s, upstream, 1);
    const before = tf.memory().numTensors;
    for (let t = 2; t <= 5; t++) trainStep(s, upstream, t);
    expect(tf.memory().numTensors).toBe(before);
    upstream.dispose();
    s.dispose();
  });
});

describe("adalora's laws catch broken variants", () => {
  it('a wrong budget schedule and a mask that touches A fail the rank-budget laws (built for the variant, not adalora)', async () => {
    const bumped = broken('budget+1', (inner) => ({
      budgetAt(this: LayerInjector, t: number) {
        return (inner as unknown as { budgetAt(this: LayerInjector, t: number): number }).budgetAt.call(this, t) + 1;
      },
    }));
    expect(await failing(bumped, /budget: within/, lawsFor(bumped))).toMatch(/budgetAt\(\d+\) = \d+/);
    const touchy = broken('touches-A', (inner) => ({
      afterStep(ctx: StepContext) {
        inner.afterStep!(ctx);
        for (const [name, p] of ctx.model.namedParameters()) if (name.endsWith('lora_A')) tf.tidy(() => p.assign(tf.mul(p.variable, 2)));
      },
    }));
    expect(await failing(touchy, /A and B are untouched/, lawsFor(touchy))).toMatch(/changed lora_A or lora_B/);
  });

  it('an allocator that ignores B importance breaks the global order', async () => {
    // keeps the triplets with the largest E entries instead of the highest scores
    const def = broken('by-magnitude', (inner) => ({
      afterStep(this: { budgetAt(t: number): number }, ctx: StepContext) {
        const budget = this.budgetAt(ctx.step);
        const es = ctx.model.namedParameters().filter(([k]) => k.endsWith('lora_E'));
        const all = es.flatMap(([k, p]) => [...p.variable.dataSync()].map((v, i) => ({ k, i, v: Math.abs(v) })));
        const cfg = inner.config as { init_warmup: number };
        if (ctx.step <= cfg.init_warmup || budget >= all.length) return;
        const cut = [...all].sort((a, b) => b.v - a.v)[budget - 1]?.v ?? Infinity;
        for (const [, p] of es) {
          const d = p.variable.dataSync().map((v) => (Math.abs(v) >= cut ? v : 0));
          tf.tidy(() => p.assign(tf.tensor(d, p.shape)));
        }
      },
    }));
    expect(await failing(def, /global order/, adaloraLaws(def))).toMatch(/kept while .* masked/);
  });

  it('a wrong parameter formula fails the count law, naming the tensors at the site', async () => {
    const def = broken('miscount', (inner) => ({
      parameterCount: (site) => inner.parameterCount(site) + (site.kind === 'linear' ? 1 : 0),
    }));
    expect(await failing(def, /parameter counts/, methodLaws(def))).toMatch(/the plan says \d+ parameters, inject added \d+: '.*\.lora_A' \[\d+,\d+\] \(\d+\), '.*\.lora_E'/);
  });
});
