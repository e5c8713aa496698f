// LoRA under the law suite as `peft verify lora` runs it (configs drawn from
// its schema, the default first), its bias modes declared as trainable extras,
// and broken variants of it that the laws must catch.
import { describe, expect, it } from 'vitest';
import {
  LawTally,
  Registry,
  Subject,
  ToyBackbone,
  compose,
  formatLawResult,
  methodLaws,
  tf,
  trainStep,
  verifyMethod,
  type LayerInjector,
  type MethodDefinition,
  type Module,
} from '../../src/index.js';
import { loraMethod, register } from './index.js';

const registry = new Registry();
register(registry);

/** LoRA under another id, with some injector members replaced. */
function broken(id: string, override: (inner: LayerInjector) => Partial<LayerInjector> & Record<string, unknown>): MethodDefinition {
  return {
    ...loraMethod,
    id,
    aliases: [],
    create: (config) => {
      const inner = loraMethod.create(config);
      return Object.assign(Object.create(inner) as LayerInjector, override(inner));
    },
  };
}

async function failing(def: MethodDefinition, lawName: RegExp): Promise<string> {
  const law = methodLaws(def).find((l) => lawName.test(l.name));
  expect(law, `no law matching ${lawName}`).toBeDefined();
  const r = await law!.run({ numRuns: 10, seed: 3 });
  expect(r.ok).toBe(false);
  return r.error!;
}

describe('lora under peft verify', () => {
  it('passes every law, by its alias, on configs drawn from its schema', async () => {
    const out = await verifyMethod(registry, 'sam_lora', { numRuns: 6, seed: 5 });
    expect(out.method).toBe('lora');
    expect(out.results.filter((r) => !r.ok).map(formatLawResult)).toEqual([]);
    expect(out.results.filter((r) => r.skipped)).toEqual([]);
  });

  it('leaks no tensor across training steps', () => {
    const s = Subject.create(loraMethod, { seed: 2, depth: 2, dim: 6, hidden: 8, batch: 2, tokens: 3 }, {}, new LawTally());
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

describe('lora bias modes are declared trainable extras', () => {
  const trainableAfterCompose = (bias: string) => {
    const toy = new ToyBackbone({ depth: 2, dim: 4, hidden: 6, seed: 1 });
    const peft = compose(toy, registry.createMethod('lora', { r: 2, bias, targets: ['attn.qkv[q,v]', 'mlp.fc1'] }), { trainDecoder: false });
    const own = new Set(peft.methodKeys);
    const out = {
      extras: peft.method.trainableExtras!(toy.model).sort(),
      otherTrainable: peft.trainable().map(([k]) => k).filter((k) => !own.has(k)).sort(),
    };
    toy.dispose();
    return out;
  };

  it("'none' declares nothing, 'lora_only' the adapted layers' biases, 'all' every bias: exactly what trains besides lora_A/B", () => {
    expect(trainableAfterCompose('none')).toEqual({ extras: [], otherTrainable: [] });
    const adapted = ['blocks.0.attn.qkv.bias', 'blocks.0.mlp.fc1.bias', 'blocks.1.attn.qkv.bias', 'blocks.1.mlp.fc1.bias'];
    expect(trainableAfterCompose('lora_only')).toEqual({ extras: adapted, otherTrainable: adapted });
    const all = trainableAfterCompose('all');
    expect(all.extras).toEqual(all.otherTrainable);
    expect(all.extras).toHaveLength(2 * 4 + 2 * 2); // per block: qkv, proj, fc1, fc2 and the two norms
  });

  it('without the declaration, a trained bias fails the compose law, named', async () => {
    const undeclared = broken('lora-undeclared-bias', () => ({ trainableExtras: undefined }));
    const law = methodLaws(undeclared, { config: { bias: 'lora_only' } }).find((l) => /^compose: only/.test(l.name))!;
    const r = await law.run({ numRuns: 3, seed: 1 });
    expect(r.ok).toBe(false);
    expect(r.error).toMatch(/^base tensor\(s\) trainable after compose: 'blocks\.0\.attn\.qkv\.bias' \[\d+\]/);
  });
});

describe('the laws catch broken variants of lora', () => {
  it('a wrong merge fails both merge laws', async () => {
    const def = broken('bad-merge', (inner) => ({
      merge(model: Module) {
        inner.merge!(model);
        for (const [name, p] of model.namedParameters()) if (name.endsWith('qkv.weight')) tf.tidy(() => p.assign(tf.mul(p.variable, 1.01)));
      },
    }));
    expect(await failing(def, /merge then unmerge/)).toMatch(/merge then unmerge changed/);
    expect(await failing(def, /merged forward/)).toMatch(/merged output differs/);
  });

  it('a method that does not save what it needs fails the save/load law', async () => {
    const def = broken('forgetful', (inner) => ({
      exportAdapterTensors: (_m: Module, t: Map<string, tf.Tensor>) => new Map([...t].map(([k, v]) => [k, k.endsWith('lora_B') ? tf.zerosLike(v) : v])),
      id: inner.id,
    }));
    expect(await failing(def, /save then load/)).toMatch(/output differs/);
  });
});
