// The law suite on small inline methods over the toy backbone (no built-in
// plugin: their own law tests sit beside them in plugins/method-*): a correct
// method passes, and each mistake a plugin author makes fails the law that
// guards it, with a message naming the tensor — an unfrozen base, a copied
// base, an undeclared extra, a frozen weight changed, a leak, a miscount, no
// identity at init. The default config is always the first case, and a
// method's own laws run after the core laws.
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { linear } from '../nn/functional.js';
import type { LinearLike } from '../nn/layers.js';
import { Module } from '../nn/module.js';
import type { InjectionSite, LinearSite } from '../peft/injection-site.js';
import type { LayerInjector, StepContext } from '../peft/layer-injector.js';
import { selectLinearSites } from '../peft/site-selector.js';
import { parseConfig } from '../registry/config.js';
import type { MethodDefinition } from '../registry/definitions.js';
import { Registry } from '../registry/registry.js';
import { configArbitrary } from './config-arbitrary.js';
import { LawTally, type Law } from './law.js';
import { formatLawResult, lawsFor, methodLaws, ownLaws, runLaws, verifyMethod } from './laws.js';
import { DEFAULT_CASE_SHAPE, lawExamples } from './method-laws.js';
import { planMethod } from './plan.js';
import { Subject, trainStep } from './subject.js';
import { ToyBackbone } from './toy-backbone.js';

/** y = (x Wᵀ + b) (1 + gain): the base's weight and bias adopted under their own names, `gain` [out] zeros. */
class GainLinear extends Module implements LinearLike {
  readonly inFeatures: number;
  readonly outFeatures: number;

  constructor(base: Module) {
    super();
    const w = this.adoptParameter('weight', base.param('weight'));
    if (base.hasParam('bias')) this.adoptParameter('bias', base.param('bias'));
    [this.outFeatures, this.inFeatures] = w.shape as [number, number];
    this.registerParameter('gain', tf.zeros([this.outFeatures]));
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const bias = this.hasParam('bias') ? this.param('bias').variable : undefined;
      return tf.mul(linear(x, this.param('weight').variable, bias), tf.add(this.param('gain').variable, 1));
    });
  }
}

const gainSchema = z.strictObject({
  targets: z.array(z.string()).default(['mlp.fc1', 'attn.proj']).describe('sites to scale'),
  mode: z.enum(['plain', 'wide']).default('plain').describe('a key the laws draw'),
});
type GainConfig = z.infer<typeof gainSchema>;

class GainInjector implements LayerInjector {
  readonly id = 'gain';
  constructor(readonly config: GainConfig) {}
  select(sites: InjectionSite[]): InjectionSite[] {
    return selectLinearSites(sites, this.config.targets, "method 'gain'").map((s) => s.site);
  }
  inject(model: Module, site: InjectionSite): void {
    model.setModule(site.path, new GainLinear(model.getModule(site.path)));
  }
  parameterCount(site: InjectionSite): number {
    return (site as LinearSite).out;
  }
}

const gainMethod: MethodDefinition<GainConfig> = {
  id: 'gain',
  summary: 'learned output gain (a test method)',
  schema: gainSchema,
  create: (config) => new GainInjector(config),
};

/** `gainMethod` under another id, with some injector members replaced. */
function variant(id: string, override: (inner: LayerInjector) => Partial<LayerInjector>, extra: Partial<MethodDefinition> = {}): MethodDefinition {
  return {
    ...gainMethod,
    id,
    create: (config) => {
      const inner = gainMethod.create(config as GainConfig);
      return Object.assign(Object.create(inner) as LayerInjector, override(inner));
    },
    ...extra,
  };
}

async function verified(def: MethodDefinition, numRuns = 6) {
  const registry = new Registry();
  registry.registerMethod(def);
  return verifyMethod(registry, def.id, { numRuns, seed: 3 });
}

/** The failing result of the law whose name matches, with its message and counterexample. */
async function failing(def: MethodDefinition, lawName: RegExp, laws: Law[] = methodLaws(def)): Promise<string> {
  const law = laws.find((l) => lawName.test(l.name));
  expect(law, `no law matching ${lawName}`).toBeDefined();
  const r = await law!.run({ numRuns: 6, seed: 3 });
  expect(r.ok).toBe(false);
  expect(r.counterexample).toBeTruthy();
  return r.error!;
}

describe('a correct method', () => {
  it('passes every core law (merge skipped: it declares none), through verifyMethod', async () => {
    const seen: string[] = [];
    const registry = new Registry();
    registry.registerMethod(gainMethod);
    const out = await verifyMethod(registry, 'gain', { numRuns: 6, seed: 1 }, (r) => seen.push(formatLawResult(r)));
    expect(out.results.filter((r) => !r.ok).map(formatLawResult)).toEqual([]);
    expect(out.ok).toBe(true);
    expect(seen).toHaveLength(out.results.length);
    expect(out.results.filter((r) => r.skipped).map((r) => r.law)).toEqual(['merge then unmerge restores every weight bit for bit', 'merged forward equals unmerged forward']);
    expect(out.results.find((r) => /^compose: only/.test(r.law))?.runs).toBeGreaterThan(0);
  });

  it('leaks no tensor across training steps', () => {
    const s = Subject.create(gainMethod, { seed: 2, depth: 2, dim: 6, hidden: 8, batch: 2, tokens: 3 }, {}, new LawTally());
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

describe('the default config is always one of the cases', () => {
  it('is the first case of every core law, on the default toy shape; not when one config is fixed', async () => {
    expect(lawExamples()).toEqual([{ shape: DEFAULT_CASE_SHAPE, config: {} }]);
    expect(lawExamples({ config: { mode: 'wide' } })).toEqual([]);
    const defaults = parseConfig(gainSchema, {}, 'gain');
    const configs: unknown[] = [];
    const recorded: MethodDefinition<GainConfig> = {
      ...gainMethod,
      create: (c) => {
        configs.push(c);
        return gainMethod.create(c);
      },
    };
    for (const law of methodLaws(recorded)) {
      configs.length = 0;
      await law.run({ numRuns: 3, seed: 9 });
      expect(configs[0], law.name).toEqual(defaults);
      expect(configs.length, law.name).toBeGreaterThan(1);
    }
  });

  it('so a mistake in the default config alone fails even with one case', async () => {
    // `mode: wide` (the default here) unfreezes a base weight; other modes are fine
    const schema = z.strictObject({ targets: gainSchema.shape.targets, mode: z.enum(['plain', 'wide']).default('wide') });
    const def: MethodDefinition = {
      ...variant('wide-default', (inner) => ({
        inject(model: Module, site: InjectionSite) {
          inner.inject(model, site);
          if (inner.config.mode === 'wide') model.getModule(site.path).param('weight').trainable = true;
        },
      })),
      schema,
    };
    const law = methodLaws(def).find((l) => /^compose: only/.test(l.name))!;
    const r = await law.run({ numRuns: 1, seed: 1 });
    expect(r.ok).toBe(false);
    expect(r.counterexample).toContain('"config":{}');
  });
});

describe('after compose, only the method trains', () => {
  it('an unfrozen base fails, naming the tensor, and the count law names it too', async () => {
    const def = variant('unfreezes', (inner) => ({
      inject(model: Module, site: InjectionSite) {
        inner.inject(model, site);
        model.getModule(site.path).param('weight').trainable = true;
      },
    }));
    const composed = await failing(def, /^compose: only/);
    expect(composed).toMatch(/^base tensor\(s\) trainable after compose: 'blocks\.0\.(attn\.proj|mlp\.fc1)\.weight' \[\d+,\d+\]/);
    expect(composed).toMatch(/trainableExtras\(model\)/);
    expect(await failing(def, /parameter counts/)).toMatch(/compose leaves \d+ parameters trainable, the plan says \d+: not expected 'blocks\.0\.(attn\.proj|mlp\.fc1)\.weight'/);
    const out = await verified(def, 3);
    expect(out.ok).toBe(false);
  });

  it('a copied base fails, naming the copy and the base tensor', async () => {
    const def = variant('copies', (inner) => ({
      inject(model: Module, site: InjectionSite) {
        inner.inject(model, site);
        const layer = model.getModule(site.path);
        layer.registerParameter('w0', layer.param('weight').variable.clone());
      },
    }));
    const msg = await failing(def, /^compose: only/);
    expect(msg).toMatch(/^the method's tensor '(blocks\.\d\.(attn\.proj|mlp\.fc1))\.w0' \[\d+,\d+\] is a copy of the frozen base tensor '\1\.weight'/);
    // the count law names what it did not expect at the site
    expect(await failing(def, /parameter counts/)).toMatch(/the plan says \d+ parameters, inject added \d+: '.*\.gain' \[\d+\] \(\d+\), '.*\.w0' \[\d+,\d+\] \(\d+\)/);
  });

  it('a constant tensor of the base shape is an initialisation, not a copy', async () => {
    const def = variant('zeros-like-base', (inner) => ({
      inject(model: Module, site: InjectionSite) {
        inner.inject(model, site);
        const layer = model.getModule(site.path);
        layer.registerBuffer('delta', tf.zerosLike(layer.param('weight').variable));
      },
    }));
    const law = methodLaws(def).find((l) => /^compose: only/.test(l.name))!;
    expect((await law.run({ numRuns: 4, seed: 2 })).ok).toBe(true);
  });

  it('base tensors the method declares in trainableExtras may train; an undeclared or unknown one fails by name', async () => {
    const unfreezeBias = (inner: LayerInjector) => ({
      inject(model: Module, site: InjectionSite) {
        inner.inject(model, site);
        model.getModule(site.path).param('bias').trainable = true;
      },
    });
    const biases = (model: Module) => model.namedParameters().filter(([k, p]) => k.endsWith('.bias') && p.trainable).map(([k]) => k);
    const declared = variant('declared-bias', (inner) => ({ ...unfreezeBias(inner), trainableExtras: biases }));
    for (const law of methodLaws(declared).filter((l) => /^compose: only|parameter counts|training step/.test(l.name))) {
      const r = await law.run({ numRuns: 4, seed: 4 });
      expect(r.error ?? '', law.name).toBe('');
    }
    expect(await failing(variant('undeclared-bias', unfreezeBias), /^compose: only/)).toMatch(/'blocks\.0\.(attn\.proj|mlp\.fc1)\.bias' \[\d+\]/);
    const unknown = variant('unknown-extra', (inner) => ({ ...unfreezeBias(inner), trainableExtras: () => ['blocks.0.nothing.here'] }));
    expect(await failing(unknown, /^compose: only/)).toBe("trainableExtras(model) names 'blocks.0.nothing.here', which is not a tensor of the composed model");
    const own = variant('own-extra', () => ({ trainableExtras: (m: Module) => m.namedParameters().filter(([k]) => k.endsWith('.gain')).map(([k]) => k).slice(0, 1) }));
    expect(await failing(own, /^compose: only/)).toMatch(/names '.*\.gain', which is the method's own tensor, not a base one/);
  });
});

describe('the other laws catch broken methods', () => {
  it('a method that perturbs a frozen weight fails the training-step law, naming it', async () => {
    const def = variant('perturbs-frozen', (inner) => ({
      afterStep(ctx: StepContext) {
        inner.afterStep?.(ctx);
        const p = ctx.model.getModule('blocks.0.attn.qkv').param('weight');
        tf.tidy(() => p.assign(tf.add(p.variable, 1e-3)));
      },
    }));
    expect(await failing(def, /training step/)).toMatch(/frozen tensor\(s\) changed.*blocks\.0\.attn\.qkv\.weight/);
  });

  it('a method that leaks a tensor per step fails the training-step law', async () => {
    const kept: tf.Tensor[] = [];
    const def = variant('leaky', () => ({
      afterStep() {
        kept.push(tf.ones([2]));
      },
    }));
    expect(await failing(def, /training step/)).toMatch(/leaked 1 tensors/);
    tf.dispose(kept);
  });

  it('a method that is not the base at init fails the identity law', async () => {
    const def = variant('not-identity', (inner) => ({
      inject(model: Module, site: InjectionSite) {
        inner.inject(model, site);
        const g = model.getModule(site.path).param('gain');
        tf.tidy(() => g.assign(tf.onesLike(g.variable)));
      },
    }));
    expect(await failing(def, /identity at init/)).toMatch(/differs from the base/);
  });

  it('a wrong parameter formula fails the count law, naming the tensors added at the site', async () => {
    const def = variant('miscount', (inner) => ({ parameterCount: (site: InjectionSite) => inner.parameterCount(site) + 1 }));
    expect(await failing(def, /parameter counts/)).toMatch(/^'blocks\.\d\.(attn\.proj|mlp\.fc1)': the plan says (\d+) parameters, inject added \d+: 'blocks\.\d\.\1\.gain' \[\d+\] \(\d+\)$/);
  });
});

describe("a method's own laws", () => {
  it('run after the core laws, built for the definition under test, with the options', async () => {
    const calls: [string, unknown][] = [];
    const own = (name: string, ok: boolean): Law => ({ name, run: () => Promise.resolve(ok ? { ok, runs: 1 } : { ok, error: `${name} broke` }) });
    const def: MethodDefinition = {
      ...gainMethod,
      id: 'with-laws',
      laws: (d, options) => {
        calls.push([d.id, options.mergeTolerance]);
        return [own('gain stays finite', true), own('gain is bounded', d.id !== 'with-laws-broken')];
      },
    };
    const core = methodLaws(def).map((l) => l.name);
    expect(lawsFor(def, { mergeTolerance: 1e-3 }).map((l) => l.name)).toEqual([...core, 'gain stays finite', 'gain is bounded']);
    expect(calls).toEqual([['with-laws', 1e-3]]);
    const broken = await verified({ ...def, id: 'with-laws-broken' }, 2);
    expect(broken.ok).toBe(false);
    expect(broken.results.filter((r) => !r.ok).map((r) => r.law)).toEqual(['gain is bounded']);
  });

  it('a laws() that throws or returns no laws is one failing law naming the method', async () => {
    const throwing = ownLaws({ ...gainMethod, laws: () => { throw new Error('no toy for me'); } });
    expect(throwing.map((l) => l.name)).toEqual(["method 'gain': its own laws"]);
    expect(await throwing[0]!.run({ numRuns: 1 })).toEqual({ ok: false, error: 'laws() threw: no toy for me' });
    const notLaws = ownLaws({ ...gainMethod, laws: () => [{ name: 'half a law' }] as unknown as Law[] });
    expect((await notLaws[0]!.run({ numRuns: 1 })).error).toBe('laws()[0] is not a law ({ name: string, run(params) })');
    expect(ownLaws(gainMethod)).toEqual([]);
  });
});

describe('law tools', () => {
  it('draws configs within the schema bounds; cross-key rules reject some draws', () => {
    const schema = z
      .strictObject({
        r: z.number().int().min(1).default(4),
        target: z.number().int().min(0).default(2),
        beta: z.number().gt(0).lt(1).default(0.85),
        on: z.boolean().default(true),
        mode: z.enum(['a', 'b']).default('a'),
      })
      .refine((c) => c.target <= c.r, { message: 'target must not exceed r', path: ['target'] });
    const drawn = fc.sample(configArbitrary(schema), { numRuns: 200, seed: 1 });
    let valid = 0;
    for (const c of drawn) {
      if (typeof c.beta === 'number') expect(c.beta > 0 && c.beta < 1).toBe(true);
      if (typeof c.r === 'number') expect(c.r).toBeGreaterThanOrEqual(1);
      if (c.mode !== undefined) expect(['a', 'b']).toContain(c.mode);
      try {
        parseConfig(schema, c, 'x');
        valid++;
      } catch {
        // the cross-key rule
      }
    }
    expect(valid).toBeGreaterThan(50);
    expect(valid).toBeLessThan(200);
  });

  it('plans a method without injecting it', () => {
    const toy = new ToyBackbone({ depth: 2, dim: 4, hidden: 8, seed: 1 });
    const plan = planMethod(toy.sites(), gainMethod.create(parseConfig(gainSchema, {}, 'gain')));
    expect(plan.sites.map((s) => s.path)).toEqual(['blocks.0.mlp.fc1', 'blocks.1.mlp.fc1', 'blocks.0.attn.proj', 'blocks.1.attn.proj']);
    expect(plan.parameters).toBe(2 * 8 + 2 * 4);
    expect(toy.model.namedParameters().some(([k]) => k.includes('gain'))).toBe(false);
    toy.dispose();
  });

  it('runLaws reports a crashing law as a failure', async () => {
    const out = await runLaws([{ name: 'crash', run: () => Promise.reject(new Error('boom')) }], { numRuns: 1 });
    expect(out.ok).toBe(false);
    expect(out.results[0]!.error).toMatch(/boom/);
  });
});
