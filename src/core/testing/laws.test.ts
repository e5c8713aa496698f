import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { Registry } from '../registry/registry.js';
import type { MethodDefinition } from '../registry/definitions.js';
import type { LayerInjector, StepContext } from '../peft/layer-injector.js';
import type { Module } from '../nn/module.js';
import { parseConfig } from '../registry/config.js';
import { register as registerLora } from '../../../plugins/method-lora/index.js';
import { register as registerAdapter } from '../../../plugins/method-adapter/index.js';
import { register as registerAdalora } from '../../../plugins/method-adalora/index.js';
import { adaloraLaws, formatLawResult, lawsFor, methodLaws, runLaws, verifyMethod } from './laws.js';
import { configArbitrary } from './config-arbitrary.js';
import { LawTally } from './law.js';
import { Subject, trainStep } from './subject.js';
import { planMethod } from './plan.js';
import { ToyBackbone } from './toy-backbone.js';

const registry = new Registry();
registerLora(registry);
registerAdapter(registry);
registerAdalora(registry);

describe('every law holds for every built-in method', () => {
  for (const def of registry.methods()) {
    for (const law of lawsFor(def)) {
      it(`${def.id}: ${law.name}`, async () => {
        const r = await law.run({ numRuns: 6, seed: 5 });
        if (!r.ok) console.log(formatLawResult({ law: law.name, ms: 0, ...r }));
        expect(r.ok).toBe(true);
        if (def.id === 'adapter' && /merge/.test(law.name)) expect(r.skipped).toMatch(/declares no merge/);
        else expect(r.skipped).toBeUndefined();
      });
    }
  }

  it('the rank-budget laws apply to adalora only', () => {
    const count = (id: string) => lawsFor(registry.method(id)).length;
    expect(count('adalora')).toBe(count('lora') + adaloraLaws(registry.method('adalora')).length);
    expect(count('adapter')).toBe(count('lora'));
  });

  it('verifyMethod runs a registered method by id or alias', async () => {
    const seen: string[] = [];
    const out = await verifyMethod(registry, 'sam_lora', { numRuns: 2, seed: 1 }, (r) => seen.push(formatLawResult(r)));
    expect(out.method).toBe('lora');
    expect(out.ok).toBe(true);
    expect(seen).toHaveLength(out.results.length);
    expect(seen[0]).toMatch(/^✓ /);
  });

  it('identity at init is skipped when the config does not promise it', async () => {
    const [identity] = methodLaws(registry.method('adapter'), { config: { zero_init: false } });
    const r = await identity!.run({ numRuns: 3, seed: 1 });
    expect(r.ok).toBe(true);
    expect(r.skipped).toMatch(/zero_init/);
  });
});

describe('no tensor leaks across a training step', () => {
  for (const id of ['lora', 'adapter', 'adalora']) {
    it(id, () => {
      const def = registry.method(id);
      const s = Subject.create(def, { seed: 2, depth: 2, dim: 6, hidden: 8, batch: 2, tokens: 3 }, id === 'adalora' ? { init_warmup: 0, final_warmup: 1, mask_interval: 1, total_step: 4, init_r: 3, target_r: 1 } : {}, new LawTally());
      s.compose(new LawTally());
      const upstream = tf.randomUniform([2, 3, 6], -1, 1, 'float32', 1);
      trainStep(s, upstream, 1);
      const before = tf.memory().numTensors;
      for (let t = 2; t <= 5; t++) trainStep(s, upstream, t);
      expect(tf.memory().numTensors).toBe(before);
      upstream.dispose();
      s.dispose();
    });
  }
});

/** A method whose injector is `inner` with some members replaced. */
function broken(id: string, base: string, override: (inner: LayerInjector) => Partial<LayerInjector> & Record<string, unknown>): MethodDefinition {
  const def = registry.method(base);
  return {
    ...def,
    id,
    aliases: [],
    create: (config) => {
      const inner = def.create(config);
      return Object.assign(Object.create(inner) as LayerInjector, override(inner));
    },
  };
}

async function failing(def: MethodDefinition, lawName: RegExp, laws = methodLaws(def)): Promise<string> {
  const law = laws.find((l) => lawName.test(l.name));
  expect(law, `no law matching ${lawName}`).toBeDefined();
  const r = await law!.run({ numRuns: 10, seed: 3 });
  expect(r.ok).toBe(false);
  expect(r.counterexample).toBeTruthy();
  return `${r.error}\n${r.counterexample}`;
}

describe('the laws catch broken methods', () => {
  it('a method that perturbs a frozen weight fails the training-step law', async () => {
    const def = broken('perturbs-frozen', 'lora', (inner) => ({
      afterStep(ctx: StepContext) {
        inner.afterStep?.(ctx);
        const p = ctx.model.getModule('blocks.0.attn.proj').param('weight');
        tf.tidy(() => p.assign(tf.add(p.variable, 1e-3)));
      },
    }));
    expect(await failing(def, /training step/)).toMatch(/frozen tensor\(s\) changed.*blocks\.0\.attn\.proj\.weight/);
  });

  it('a method that leaks a tensor per step fails the training-step law', async () => {
    const kept: tf.Tensor[] = [];
    const def = broken('leaky', 'adapter', () => ({
      afterStep() {
        kept.push(tf.ones([2]));
      },
    }));
    expect(await failing(def, /training step/)).toMatch(/leaked 1 tensors/);
    kept.forEach((t) => t.dispose());
  });

  it('a wrong merge fails both merge laws', async () => {
    const def = broken('bad-merge', 'lora', (inner) => ({
      merge(model: Module) {
        inner.merge!(model);
        for (const [name, p] of model.namedParameters()) if (name.endsWith('qkv.weight')) tf.tidy(() => p.assign(tf.mul(p.variable, 1.01)));
      },
    }));
    expect(await failing(def, /merge then unmerge/)).toMatch(/merge then unmerge changed/);
    expect(await failing(def, /merged forward/)).toMatch(/merged output differs/);
  });

  it('a method that is not the base at init fails the identity law', async () => {
    const def = broken('not-identity', 'lora', (inner) => ({
      inject(model: Module, site) {
        inner.inject(model, site);
        const b = model.getModule(site.path).param('lora_B');
        tf.tidy(() => b.assign(tf.onesLike(b.variable)));
      },
    }));
    expect(await failing(def, /identity at init/)).toMatch(/differs from the base/);
  });

  it('a wrong parameter formula fails the count law', async () => {
    const def = broken('miscount', 'adalora', (inner) => ({
      parameterCount: (site) => inner.parameterCount(site) + (site.kind === 'linear' ? 1 : 0),
    }));
    expect(await failing(def, /parameter counts/)).toMatch(/the plan says \d+ parameters, inject added/);
  });

  it('a method that does not save what it needs fails the save/load law', async () => {
    const def = broken('forgetful', 'lora', (inner) => ({
      exportAdapterTensors: (_m: Module, t: Map<string, tf.Tensor>) => new Map([...t].map(([k, v]) => [k, k.endsWith('lora_B') ? tf.zerosLike(v) : v])),
      id: inner.id,
    }));
    expect(await failing(def, /save then load/)).toMatch(/output differs/);
  });

  it('a wrong budget schedule and a mask that touches A fail the rank-budget laws', async () => {
    const bumped = broken('budget+1', 'adalora', (inner) => ({
      budgetAt(this: LayerInjector, t: number) {
        return (inner as unknown as { budgetAt(this: LayerInjector, t: number): number }).budgetAt.call(this, t) + 1;
      },
    }));
    expect(await failing(bumped, /budget: within/, adaloraLaws(bumped))).toMatch(/budgetAt\(\d+\) = \d+/);
    const touchy = broken('touches-A', 'adalora', (inner) => ({
      afterStep(ctx: StepContext) {
        inner.afterStep!(ctx);
        for (const [name, p] of ctx.model.namedParameters()) if (name.endsWith('lora_A')) tf.tidy(() => p.assign(tf.mul(p.variable, 2)));
      },
    }));
    expect(await failing(touchy, /A and B are untouched/, adaloraLaws(touchy))).toMatch(/changed lora_A or lora_B/);
  });

  it('an allocator that ignores B importance breaks the global order', async () => {
    // keeps the triplets with the largest E entries instead of the highest scores
    const def = broken('by-magnitude', 'adalora', (inner) => ({
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
});

describe('law tools', () => {
  it('draws configs within the schema bounds', () => {
    const schema = registry.method('adalora').schema;
    const drawn = fc.sample(configArbitrary(schema), { numRuns: 200, seed: 1 });
    let valid = 0;
    for (const c of drawn) {
      if (typeof c.beta1 === 'number') expect(c.beta1 > 0 && c.beta1 < 1).toBe(true);
      if (typeof c.init_r === 'number') expect(c.init_r).toBeGreaterThanOrEqual(1);
      try {
        parseConfig(schema, c, 'x');
        valid++;
      } catch {
        // cross-key rules reject some draws
      }
    }
    expect(valid).toBeGreaterThan(50);
  });

  it('plans a method without injecting it', () => {
    const toy = new ToyBackbone({ depth: 2, dim: 4, hidden: 8, seed: 1 });
    const plan = planMethod(toy.sites(), registry.createMethod('lora', { r: 2 }));
    expect(plan.sites.map((s) => s.path)).toEqual(['blocks.0.attn.qkv', 'blocks.1.attn.qkv', 'blocks.0.mlp.fc1', 'blocks.1.mlp.fc1', 'blocks.0.mlp.fc2', 'blocks.1.mlp.fc2']);
    expect(plan.sites[0]!.parameters).toBe(2 * 2 * 4 + 4 * 2 * 2);
    expect(plan.parameters).toBe(2 * (16 + 16 + 2 * 12 + 2 * 12));
    expect(toy.model.namedParameters().some(([k]) => k.includes('lora'))).toBe(false);
    toy.dispose();
  });

  it('runLaws reports a crashing law as a failure', async () => {
    const out = await runLaws([{ name: 'crash', run: () => Promise.reject(new Error('boom')) }], { numRuns: 1 });
    expect(out.ok).toBe(false);
    expect(out.results[0]!.error).toMatch(/boom/);
  });
});
