// peftjs adapter files: save and load bit for bit, errors that name the file
// and the key, atomic overwrite, and the plugins recorded beside the method.
// The method is a small low-rank one defined here (core tests use no built-in
// plugin): y = base(x) + x A^T B^T at the chosen linears, optionally with the
// base bias trained too (so the file holds "other trainable" tensors).
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { PeftError } from '../errors.js';
import { Module } from '../nn/module.js';
import type { LinearLike } from '../nn/layers.js';
import type { LinearSite } from '../peft/injection-site.js';
import type { LayerInjector } from '../peft/layer-injector.js';
import { selectLinearSites } from '../peft/site-selector.js';
import { Registry } from '../registry/registry.js';
import { BUILT_IN, peftjsVersion } from '../registry/provenance.js';
import { compose } from '../peft/compose.js';
import { ToyBackbone, type ToySpec } from '../testing/toy-backbone.js';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, loadAdapter, readAdapterConfig, saveAdapter } from './adapter-files.js';
import { readSafetensors, serializeSafetensors, toFloat32 } from './safetensors.js';

class LowRankLinear extends Module implements LinearLike {
  constructor(readonly base: LinearLike, r: number, trainBias: boolean) {
    super();
    this.adoptParameter('weight', base.param('weight'));
    const bias = this.adoptParameter('bias', base.param('bias'));
    if (trainBias) bias.trainable = true;
    this.registerParameter('low_A', tf.randomUniform([r, base.inFeatures], -0.1, 0.1, 'float32', 1));
    this.registerParameter('low_B', tf.zeros([base.outFeatures, r]));
  }
  get inFeatures() {
    return this.base.inFeatures;
  }
  get outFeatures() {
    return this.base.outFeatures;
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const low = tf.matMul(tf.matMul(tf.reshape(x, [-1, this.inFeatures]), this.param('low_A').variable, false, true), this.param('low_B').variable, false, true);
      return tf.add(this.base.forward(x), tf.reshape(low, [...x.shape.slice(0, -1), this.outFeatures]));
    });
  }
}

const lowRankSchema = z.strictObject({
  r: z.number().int().min(1).default(2),
  train_bias: z.boolean().default(false),
  targets: z.array(z.string()).default(['mlp.fc1']),
});
type LowRankConfig = z.infer<typeof lowRankSchema>;

/** Registers the low-rank method under `id`. */
function registerLowRank(registry: Registry, id: string): void {
  registry.registerMethod({
    id,
    summary: 'a low-rank update for these tests',
    schema: lowRankSchema,
    create: (config: LowRankConfig): LayerInjector => ({
      id,
      config,
      select: (sites) => selectLinearSites(sites, config.targets, id).map((s) => s.site),
      inject: (model, site) => model.setModule(site.path, new LowRankLinear(model.getModule(site.path) as unknown as LinearLike, config.r, config.train_bias)),
      parameterCount: (site) => config.r * ((site as LinearSite).in + (site as LinearSite).out),
      trainableExtras: (model) => (config.train_bias ? model.trainableParameters().map(([k]) => k).filter((k) => k.endsWith('.bias')) : []),
    }),
  });
}

const registry = new Registry();
await registry.load('adapter-files test', (r) => {
  registerLowRank(r, 'lowrank');
  registerLowRank(r, 'otherrank');
});
const tmp = mkdtempSync(join(tmpdir(), 'peftjs-adapter-files-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const spec: ToySpec = { depth: 2, dim: 6, hidden: 8, seed: 4 };
const lowConfig = { r: 2, train_bias: true, targets: ['attn.qkv', 'mlp.fc1'] };

function trained() {
  const toy = new ToyBackbone(spec);
  const peft = compose(toy, registry.createMethod('lowrank', lowConfig), { trainDecoder: false });
  let i = 0;
  for (const [, p] of peft.trainable()) tf.tidy(() => p.assign(tf.randomUniform(p.shape, -1, 1, 'float32', ++i)));
  return { toy, peft };
}

async function saved(name: string) {
  const { toy, peft } = trained();
  const dir = join(tmp, name);
  const result = await saveAdapter(dir, peft);
  return { toy, peft, dir, result };
}

function fresh(config: Record<string, unknown> = lowConfig, method = 'lowrank') {
  const toy = new ToyBackbone(spec);
  return { toy, peft: compose(toy, registry.createMethod(method, config), { trainDecoder: false }) };
}

describe('adapter files', () => {
  it('save the method tensors and trainable biases, and load them back bit for bit', async () => {
    const { toy, peft, dir, result } = await saved('roundtrip');
    expect(readdirSync(dir).sort()).toEqual([ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE]); // no temp files left
    const cfg = readAdapterConfig(dir);
    expect(cfg.method).toBe('lowrank');
    expect(cfg.config).toEqual(lowConfig);
    expect(cfg.plugins).toBeUndefined(); // the registry was loaded under a plain name: no provenance to record
    expect(cfg.backbone).toEqual({ id: 'toy', preset: toy.preset });
    expect(cfg.sites.map((s) => s.path)).toEqual(['blocks.0.attn.qkv', 'blocks.1.attn.qkv', 'blocks.0.mlp.fc1', 'blocks.1.mlp.fc1']);
    expect(cfg.method_tensors).toEqual(peft.methodKeys);
    expect(cfg.trainable_tensors.sort()).toEqual(['blocks.0.attn.qkv.bias', 'blocks.0.mlp.fc1.bias', 'blocks.1.attn.qkv.bias', 'blocks.1.mlp.fc1.bias']);
    expect(result.tensors).toHaveLength(8 + 4);
    const file = readSafetensors(join(dir, ADAPTER_WEIGHTS_FILE));
    expect(file.metadata['peftjs.method']).toBe('lowrank');
    expect([...file.tensors.keys()].some((k) => k.endsWith('.weight'))).toBe(false); // no frozen weights

    const x = tf.randomUniform([1, 4, 6], -1, 1, 'float32', 7) as tf.Tensor3D;
    toy.model.eval();
    const y = toy.forward(x);
    const other = fresh();
    const { loaded } = loadAdapter(dir, other.peft);
    expect(loaded.sort()).toEqual(result.tensors);
    const mine = new Map(toy.model.namedTensors());
    for (const [k, p] of other.toy.model.namedTensors()) {
      expect(Array.from(p.variable.dataSync()), k).toEqual(Array.from(mine.get(k)!.variable.dataSync()));
    }
    other.toy.model.eval();
    const y2 = other.toy.forward(x);
    expect(Array.from(y2.dataSync())).toEqual(Array.from(y.dataSync()));
    for (const t of [x, y, y2]) t.dispose();
    toy.dispose();
    other.toy.dispose();
  });

  it('name the file and the key in every error', async () => {
    const { toy, dir } = await saved('errors');
    toy.dispose();
    const cfgPath = join(dir, ADAPTER_CONFIG_FILE);
    const wPath = join(dir, ADAPTER_WEIGHTS_FILE);
    const good = readFileSync(cfgPath, 'utf8');
    const goodWeights = readFileSync(wPath);
    const expectError = (config: Record<string, unknown>, re: RegExp, method = 'lowrank', options = {}) => {
      const f = fresh(config, method);
      try {
        expect(() => loadAdapter(dir, f.peft, options)).toThrow(PeftError);
        expect(() => loadAdapter(dir, f.peft, options)).toThrow(re);
      } finally {
        f.toy.dispose();
      }
    };

    expect(() => readAdapterConfig(join(tmp, 'nowhere'))).toThrow(/adapter_config\.json: no adapter here/);
    expectError(lowConfig, /adapter_config\.json: 'method' is 'lowrank' but the model's method is 'otherrank'/, 'otherrank');
    expectError({ ...lowConfig, r: 3 }, /adapter_config\.json: 'config\.r' is 2 but the model's lowrank has 3/);
    expectError({ ...lowConfig, r: 3 }, /adapter_model\.safetensors: tensor '.*low_A' has shape \[2,6\] but the model expects \[3,6\]/, 'lowrank', { checkConfig: false });

    writeFileSync(cfgPath, '{ not json');
    expect(() => readAdapterConfig(dir)).toThrow(/adapter_config\.json: not valid JSON/);
    writeFileSync(cfgPath, JSON.stringify({ ...JSON.parse(good), method_tensors: 'x' }));
    expect(() => readAdapterConfig(dir)).toThrow(/adapter_config\.json: 'method_tensors' must be a list/);
    writeFileSync(cfgPath, JSON.stringify({ ...JSON.parse(good), version: 9 }));
    expect(() => readAdapterConfig(dir)).toThrow(/'version' 9 is not supported/);
    writeFileSync(cfgPath, good);

    // drop one tensor, add an unknown one
    const file = readSafetensors(wPath);
    const entries = new Map([...file.tensors].map(([k, t]) => [k, { dtype: 'F32' as const, shape: t.shape, data: toFloat32(t) }]));
    const dropped = 'blocks.1.mlp.fc1.low_B';
    const withoutOne = new Map(entries);
    withoutOne.delete(dropped);
    writeFileSync(wPath, serializeSafetensors(withoutOne));
    expectError(lowConfig, new RegExp(`adapter_model\\.safetensors: missing tensor '${dropped.replace(/\./g, '\\.')}'`));
    const extra = new Map(entries);
    extra.set('blocks.0.mlp.fc9.low_A', { dtype: 'F32', shape: [1], data: new Float32Array(1) });
    writeFileSync(wPath, serializeSafetensors(extra));
    expectError(lowConfig, /adapter_model\.safetensors: unexpected tensor 'blocks\.0\.mlp\.fc9\.low_A'/);
    writeFileSync(wPath, goodWeights.subarray(0, 20));
    expectError(lowConfig, /adapter_model\.safetensors: not a valid safetensors file/);
    writeFileSync(wPath, goodWeights);
    const ok = fresh();
    expect(loadAdapter(dir, ok.peft).loaded.length).toBeGreaterThan(0);
    ok.toy.dispose();
  });

  it('record the plugins that provided the method and the backbone, and read files without them', async () => {
    const dora = { name: 'peftjs-lowrank', version: '0.3.0', path: '/plugins/peftjs-lowrank' };
    const withPlugins = new Registry();
    await withPlugins.load(dora, (r) => registerLowRank(r, 'lowrank'));
    await withPlugins.load({ name: 'toy-backbones', path: BUILT_IN }, (r) =>
      r.registerBackbone({ id: 'toy', summary: '', presets: { d2: {} }, defaultPreset: 'd2', schema: z.object({}), create: () => new ToyBackbone(spec) }),
    );
    const backbone = withPlugins.createBackbone('toy');
    const peft = compose(backbone, withPlugins.createMethod('lowrank', lowConfig), { trainDecoder: false });
    const dir = join(tmp, 'provenance');
    await saveAdapter(dir, peft);
    const json = JSON.parse(readFileSync(join(dir, ADAPTER_CONFIG_FILE), 'utf8')) as Record<string, unknown>;
    const plugins = { method: dora, backbone: { name: 'toy-backbones', version: peftjsVersion(), path: BUILT_IN } };
    expect(json.plugins).toEqual(plugins);
    expect(readAdapterConfig(dir).plugins).toEqual(plugins);
    expect(JSON.parse(readSafetensors(join(dir, ADAPTER_WEIGHTS_FILE)).metadata['peftjs.plugins']!)).toEqual(plugins);
    // a file from before provenance (no 'plugins') still reads and loads
    const { plugins: _dropped, ...old } = json;
    writeFileSync(join(dir, ADAPTER_CONFIG_FILE), JSON.stringify(old));
    expect(readAdapterConfig(dir).plugins).toBeUndefined();
    const f = fresh();
    expect(loadAdapter(dir, f.peft).loaded.length).toBe(12);
    f.toy.dispose();
    // a damaged one names the key
    writeFileSync(join(dir, ADAPTER_CONFIG_FILE), JSON.stringify({ ...old, plugins: { method: { name: 'x' } } }));
    expect(() => readAdapterConfig(dir)).toThrow(/adapter_config\.json: 'plugins'\.method must be \{ "name", "version"\?, "path" \}/);
    writeFileSync(join(dir, ADAPTER_CONFIG_FILE), JSON.stringify({ ...old, plugins: { methods: {} } }));
    expect(() => readAdapterConfig(dir)).toThrow(/'plugins': unexpected key "methods"/);
    backbone.model.dispose();
  });

  it('overwrite an existing adapter atomically', async () => {
    const a = await saved('overwrite');
    const again = await saveAdapter(a.dir, a.peft);
    expect(readdirSync(a.dir).sort()).toEqual([ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE]);
    expect(again.tensors).toEqual(a.result.tensors);
    a.toy.dispose();
  });
});
