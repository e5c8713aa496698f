import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { PeftError } from '../errors.js';
import { Registry } from '../registry/registry.js';
import { compose } from '../peft/compose.js';
import { ToyBackbone } from '../testing/toy-backbone.js';
import { register as registerLora } from '../../../plugins/method-lora/index.js';
import { register as registerAdapter } from '../../../plugins/method-adapter/index.js';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, loadAdapter, readAdapterConfig, saveAdapter } from './adapter-files.js';
import { readSafetensors, serializeSafetensors, toFloat32 } from './safetensors.js';

const registry = new Registry();
registerLora(registry);
registerAdapter(registry);
const tmp = mkdtempSync(join(tmpdir(), 'peftjs-adapter-files-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const spec = { depth: 2, dim: 6, hidden: 8, seed: 4 };
const loraConfig = { r: 2, alpha: 4, bias: 'lora_only', targets: ['attn.qkv[q,v]', 'mlp.fc1'] };

function trainedLora() {
  const toy = new ToyBackbone(spec);
  const peft = compose(toy, registry.createMethod('lora', loraConfig), { trainDecoder: false });
  let i = 0;
  for (const [, p] of peft.trainable()) tf.tidy(() => p.assign(tf.randomUniform(p.shape, -1, 1, 'float32', ++i)));
  return { toy, peft };
}

async function saved(name: string) {
  const { toy, peft } = trainedLora();
  const dir = join(tmp, name);
  const result = await saveAdapter(dir, peft);
  return { toy, peft, dir, result };
}

function fresh(config: Record<string, unknown> = loraConfig, method = 'lora') {
  const toy = new ToyBackbone(spec);
  return { toy, peft: compose(toy, registry.createMethod(method, config), { trainDecoder: false }) };
}

describe('adapter files', () => {
  it('save the method tensors and trainable biases, and load them back bit for bit', async () => {
    const { toy, peft, dir, result } = await saved('roundtrip');
    expect(readdirSync(dir).sort()).toEqual([ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE]); // no temp files left
    const cfg = readAdapterConfig(dir);
    expect(cfg.method).toBe('lora');
    expect(cfg.config).toMatchObject(loraConfig);
    expect(cfg.backbone).toEqual({ id: 'toy', preset: toy.preset });
    expect(cfg.sites.map((s) => s.path)).toEqual(['blocks.0.attn.qkv', 'blocks.1.attn.qkv', 'blocks.0.mlp.fc1', 'blocks.1.mlp.fc1']);
    expect(cfg.method_tensors).toEqual(peft.methodKeys);
    expect(cfg.trainable_tensors.sort()).toEqual(['blocks.0.attn.qkv.bias', 'blocks.0.mlp.fc1.bias', 'blocks.1.attn.qkv.bias', 'blocks.1.mlp.fc1.bias']);
    expect(result.tensors).toHaveLength(8 + 4);
    const file = readSafetensors(join(dir, ADAPTER_WEIGHTS_FILE));
    expect(file.metadata['peftjs.method']).toBe('lora');
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
    const expectError = (config: Record<string, unknown>, re: RegExp, method = 'lora', options = {}) => {
      const f = fresh(config, method);
      try {
        expect(() => loadAdapter(dir, f.peft, options)).toThrow(PeftError);
        expect(() => loadAdapter(dir, f.peft, options)).toThrow(re);
      } finally {
        f.toy.dispose();
      }
    };

    expect(() => readAdapterConfig(join(tmp, 'nowhere'))).toThrow(/adapter_config\.json: no adapter here/);
    expectError({ mlp_ratio: 0.25 }, /adapter_config\.json: 'method' is 'lora' but the model's method is 'adapter'/, 'adapter');
    expectError({ ...loraConfig, r: 3 }, /adapter_config\.json: 'config\.r' is 2 but the model's lora has 3/);
    expectError({ ...loraConfig, r: 3 }, /adapter_model\.safetensors: tensor '.*lora_A' has shape \[4,6\] but the model expects \[6,6\]/, 'lora', { checkConfig: false });

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
    const dropped = 'blocks.1.mlp.fc1.lora_B';
    const withoutOne = new Map(entries);
    withoutOne.delete(dropped);
    writeFileSync(wPath, serializeSafetensors(withoutOne));
    expectError(loraConfig, new RegExp(`adapter_model\\.safetensors: missing tensor '${dropped.replace(/\./g, '\\.')}'`));
    const extra = new Map(entries);
    extra.set('blocks.0.mlp.fc9.lora_A', { dtype: 'F32', shape: [1], data: new Float32Array(1) });
    writeFileSync(wPath, serializeSafetensors(extra));
    expectError(loraConfig, /adapter_model\.safetensors: unexpected tensor 'blocks\.0\.mlp\.fc9\.lora_A'/);
    writeFileSync(wPath, goodWeights.subarray(0, 20));
    expectError(loraConfig, /adapter_model\.safetensors: not a valid safetensors file/);
    writeFileSync(wPath, goodWeights);
    const ok = fresh();
    expect(loadAdapter(dir, ok.peft).loaded.length).toBeGreaterThan(0);
    ok.toy.dispose();
  });

  it('overwrite an existing adapter atomically', async () => {
    const a = await saved('overwrite');
    const again = await saveAdapter(a.dir, a.peft);
    expect(readdirSync(a.dir).sort()).toEqual([ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE]);
    expect(again.tensors).toEqual(a.result.tensors);
    a.toy.dispose();
  });
});
