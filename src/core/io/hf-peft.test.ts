import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { registerToys } from '../../../test/support/toy-plugins.js';
import { register as registerAdalora } from '../../../plugins/method-adalora/index.js';
import { register as registerAdapter } from '../../../plugins/method-adapter/index.js';
import { register as registerLora } from '../../../plugins/method-lora/index.js';
import { compose, type PeftModel } from '../peft/compose.js';
import { Registry } from '../registry/registry.js';
import { ToyBackbone } from '../testing/toy-backbone.js';
import { saveAdapter } from './adapter-files.js';
import {
  HF_PEFT_PREFIX,
  adapterMethod,
  detectAdapterFormat,
  exportHfPeft,
  fullToGroupedB,
  groupedToFullB,
  loadAnyAdapter,
  loadHfPeftAdapter,
  lowRankLayers,
  readHfPeftConfig,
} from './hf-peft.js';
import { readSafetensors, serializeSafetensors, toFloat32 } from './safetensors.js';

const registry = new Registry();
registerLora(registry);
registerAdalora(registry);
registerAdapter(registry);
registerToys(registry);
const tmp = mkdtempSync(join(tmpdir(), 'peftjs-hf-peft-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const spec = { depth: 2, dim: 6, hidden: 8, seed: 3 };
const x = () => tf.randomUniform([2, 3, 6], -1, 1, 'float32', 21) as tf.Tensor3D;

function build(method: string, config: Record<string, unknown>) {
  const toy = new ToyBackbone(spec);
  const peft = compose(toy, registry.createMethod(method, config), { trainDecoder: false });
  return { toy, peft };
}

function randomise(peft: PeftModel, seed = 1) {
  let i = seed * 1000;
  for (const [, p] of peft.trainable()) tf.tidy(() => p.assign(tf.randomUniform(p.shape, -0.5, 0.5, 'float32', ++i)));
}

function maxDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

const loraConfig = { r: 2, alpha: 3, bias: 'lora_only', targets: ['attn.qkv[q,v]', 'mlp.fc1'] };

describe('Hugging Face PEFT export: LoRA', () => {
  it('writes adapter_config.json and base_model.model.<path>.lora_A/B.weight keys', async () => {
    const { toy, peft } = build('lora', loraConfig);
    randomise(peft);
    const dir = join(tmp, 'lora');
    await exportHfPeft(dir, peft, { baseModel: 'sam_vit_b.pth' });
    const cfg = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
    expect(cfg).toMatchObject({
      peft_type: 'LORA',
      r: 2,
      lora_alpha: 3,
      lora_dropout: 0,
      bias: 'lora_only',
      fan_in_fan_out: false,
      use_rslora: false,
      task_type: null,
      inference_mode: true,
      base_model_name_or_path: 'sam_vit_b.pth',
      modules_to_save: null,
      // grouped q,v (k = 2) is a rank r*k LoRA with alpha*k: the same scaling alpha / r; keyed by the
      // escaped path without its first component (PEFT matches `.*\.{key}$` on the module name)
      rank_pattern: { '0\\.attn\\.qkv': 4, '1\\.attn\\.qkv': 4 },
      alpha_pattern: { '0\\.attn\\.qkv': 6, '1\\.attn\\.qkv': 6 },
    });
    expect([...cfg.target_modules].sort()).toEqual(['blocks.0.attn.qkv', 'blocks.0.mlp.fc1', 'blocks.1.attn.qkv', 'blocks.1.mlp.fc1']);
    const file = readSafetensors(join(dir, 'adapter_model.safetensors'));
    const keys = [...file.tensors.keys()].sort();
    for (const k of keys) expect(k).toMatch(/^base_model\.model\.blocks\.\d\.(attn\.qkv|mlp\.fc1)\.(lora_[AB]\.weight|base_layer\.bias)$/);
    expect(keys.filter((k) => k.includes('lora_'))).toHaveLength(8);
    expect(file.tensors.get(`${HF_PEFT_PREFIX}blocks.0.attn.qkv.lora_A.weight`)!.shape).toEqual([4, 6]);
    expect(file.tensors.get(`${HF_PEFT_PREFIX}blocks.0.attn.qkv.lora_B.weight`)!.shape).toEqual([18, 4]);
    expect(file.tensors.get(`${HF_PEFT_PREFIX}blocks.0.mlp.fc1.lora_B.weight`)!.shape).toEqual([8, 2]);
    expect(file.metadata.format).toBe('pt');
    expect(detectAdapterFormat(dir)).toBe('hf-peft');
    toy.dispose();
  });

  it('the grouped → full conversion gives the same update (to 1e-6), and is undone exactly', async () => {
    const { toy, peft } = build('lora', { r: 3, alpha: 5, targets: ['attn.qkv[q,v]'] });
    randomise(peft, 2);
    const layer = lowRankLayers(toy.model).find((l) => l.kind === 'grouped')!;
    const a = layer.module.param('lora_A').variable;
    const b = layer.module.param('lora_B').variable;
    const full = groupedToFullB((await b.data()) as Float32Array, layer.enabled!, layer.groupWidth!, 3);
    const k = 2;
    const hfDelta = tf.tidy(() => tf.mul(tf.matMul(tf.tensor(full, [18, 6]), a), (5 * k) / (3 * k)));
    const ours = (layer.module as unknown as { deltaWeight(): tf.Tensor }).deltaWeight();
    expect(maxDiff(hfDelta, ours)).toBeLessThan(1e-6);
    // the k group's rows are exactly zero
    expect(Array.from(full.subarray(6 * 6, 12 * 6)).every((v) => v === 0)).toBe(true);
    expect(Array.from(fullToGroupedB(full, layer.enabled!, 6, 3, 'x'))).toEqual(Array.from(await b.data()));
    tf.dispose([hfDelta, ours]);
    toy.dispose();
  });

  it('export then import reproduces the outputs exactly (grouped and plain layers, biases)', async () => {
    const src = build('lora', loraConfig);
    randomise(src.peft, 3);
    const dir = join(tmp, 'lora-rt');
    await exportHfPeft(dir, src.peft);
    const dst = build('lora', loraConfig);
    const r = loadHfPeftAdapter(dir, dst.peft);
    expect(r.loaded).toHaveLength(12);
    const input = x();
    const y0 = src.toy.forward(input);
    const y1 = dst.toy.forward(input);
    expect(maxDiff(y0, y1)).toBe(0);
    tf.dispose([input, y0, y1]);
    src.toy.dispose();
    dst.toy.dispose();
  });

  it('translates an HF adapter into the peftjs method config (grouped q,v detected), which then loads it', async () => {
    const src = build('lora', { r: 2, alpha: 2, rslora: true, targets: ['attn.qkv[q,v]', 'mlp.fc2'] });
    randomise(src.peft, 4);
    const dir = join(tmp, 'lora-derive');
    await exportHfPeft(dir, src.peft);
    const m = adapterMethod(dir, src.toy.sites());
    expect(m).toMatchObject({ format: 'hf-peft', id: 'lora', config: { r: 2, alpha: 2, rslora: true, bias: 'none', targets: ['attn.qkv[q,v]', 'mlp.fc2'] } });
    const dst = build(m.id, m.config);
    loadAnyAdapter(dir, dst.peft);
    const input = x();
    const [y0, y1] = [src.toy.forward(input), dst.toy.forward(input)];
    expect(maxDiff(y0, y1)).toBeLessThan(1e-6);
    tf.dispose([input, y0, y1]);
    src.toy.dispose();
    dst.toy.dispose();
  });

  it('a plain PEFT LoRA (other alpha, not grouped) loads with its scaling folded into B', async () => {
    const src = build('lora', { r: 2, alpha: 4, targets: ['attn.proj'] });
    randomise(src.peft, 5);
    const dir = join(tmp, 'lora-alpha');
    await exportHfPeft(dir, src.peft);
    const cfgPath = join(dir, 'adapter_config.json');
    const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
    // as if PEFT had trained it with lora_alpha 8: B must be scaled by 2 to give the same update under alpha 4
    const file = readSafetensors(join(dir, 'adapter_model.safetensors'));
    const entries = new Map([...file.tensors].map(([k, raw]) => {
      const v = toFloat32(raw);
      return [k, { dtype: 'F32' as const, shape: raw.shape, data: k.includes('lora_B') ? v.map((e) => e / 2) : v }];
    }));
    writeFileSync(join(dir, 'adapter_model.safetensors'), serializeSafetensors(entries));
    writeFileSync(cfgPath, JSON.stringify({ ...cfg, lora_alpha: 8 }));
    const dst = build('lora', { r: 2, alpha: 4, targets: ['attn.proj'] });
    loadHfPeftAdapter(dir, dst.peft);
    const input = x();
    const [y0, y1] = [src.toy.forward(input), dst.toy.forward(input)];
    expect(maxDiff(y0, y1)).toBeLessThan(1e-6);
    tf.dispose([input, y0, y1]);
    src.toy.dispose();
    dst.toy.dispose();
  });

  it('refuses what it cannot represent, naming it', async () => {
    const src = build('lora', { r: 2, targets: ['attn.qkv'] });
    randomise(src.peft, 6);
    const dir = join(tmp, 'lora-full');
    await exportHfPeft(dir, src.peft);
    const grouped = build('lora', { r: 2, targets: ['attn.qkv[q,v]'] });
    expect(() => loadHfPeftAdapter(dir, grouped.peft)).toThrow(/'base_model\.model\.blocks\.0\.attn\.qkv\.lora_A\.weight' has shape \[2,6\] but the model expects \[4,6\]/);
    const qv = build('lora', { r: 2, targets: ['attn.qkv[q,v]'] });
    randomise(qv.peft, 7);
    const qvDir = join(tmp, 'lora-qv');
    await exportHfPeft(qvDir, qv.peft);
    const qk = build('lora', { r: 2, targets: ['attn.qkv[q,k]'] });
    expect(() => loadHfPeftAdapter(qvDir, qk.peft)).toThrow(/'blocks\.0\.attn\.qkv': lora_B is not block-structured for groups \[1,1,0\]/);
    qv.toy.dispose();
    qk.toy.dispose();
    const ada = build('adalora', { init_r: 2, target_r: 1, targets: ['attn.qkv'], total_step: 10, init_warmup: 1, final_warmup: 1 });
    expect(() => loadHfPeftAdapter(dir, ada.peft)).toThrow("a LORA adapter needs method 'lora', the model has 'adalora'");
    const adapter = build('adapter', {});
    await expect(exportHfPeft(join(tmp, 'no'), adapter.peft)).rejects.toThrow("method 'adapter' has no Hugging Face PEFT form");
    const other = build('lora', { r: 2, targets: ['mlp.fc1'] });
    expect(() => loadHfPeftAdapter(dir, other.peft)).toThrow(/missing tensor 'base_model\.model\.blocks\.0\.mlp\.fc1\.lora_A\.weight'/);
    for (const t of [src, grouped, ada, adapter, other]) t.toy.dispose();
  });
});

describe('Hugging Face PEFT export: AdaLoRA', () => {
  const adaConfig = { init_r: 4, target_r: 2, alpha: 2, targets: ['attn.qkv', 'mlp.fc2'], total_step: 100, init_warmup: 10, final_warmup: 10, mask_interval: 5 };

  it('writes lora_A/E/B pruned to the rank pattern (no ranknum), and imports exactly', async () => {
    const src = build('adalora', adaConfig);
    randomise(src.peft, 7);
    const pattern = { 'blocks.0.attn.qkv': [true, false, true, true], 'blocks.1.attn.qkv': [true, true, true, true], 'blocks.0.mlp.fc2': [false, false, false, true], 'blocks.1.mlp.fc2': [true, true, false, false] };
    src.peft.method.loadAdapterState!(src.toy.model, { rank_pattern: pattern });
    const dir = join(tmp, 'adalora');
    await exportHfPeft(dir, src.peft);
    const cfg = readHfPeftConfig(dir);
    expect(cfg).toMatchObject({ peft_type: 'ADALORA', init_r: 4, target_r: 2, lora_alpha: 2, tinit: 10, tfinal: 10, deltaT: 5, total_step: 100, beta1: 0.85, beta2: 0.85, orth_reg_weight: 0.1, r: 8 });
    // keyed by module path + '.lora_E', init_r entries; a pruned layer lists its kept rows first (only the count matters to PEFT)
    const count = (v: unknown) => (v as boolean[]).filter(Boolean).length;
    expect(Object.keys(cfg.rank_pattern!).sort()).toEqual(Object.keys(pattern).map((k) => `${k}.lora_E`).sort());
    for (const [k, v] of Object.entries(pattern)) {
      expect((cfg.rank_pattern![`${k}.lora_E`] as boolean[]).length).toBe(4);
      expect(count(cfg.rank_pattern![`${k}.lora_E`])).toBe(count(v));
    }
    const file = readSafetensors(join(dir, 'adapter_model.safetensors'));
    expect([...file.tensors.keys()].every((k) => /^base_model\.model\.blocks\.\d\.(attn\.qkv|mlp\.fc2)\.lora_[AEB]$/.test(k))).toBe(true);
    expect(file.tensors.get(`${HF_PEFT_PREFIX}blocks.0.attn.qkv.lora_A`)!.shape).toEqual([3, 6]);
    expect(file.tensors.get(`${HF_PEFT_PREFIX}blocks.0.mlp.fc2.lora_E`)!.shape).toEqual([1, 1]);
    expect(file.tensors.get(`${HF_PEFT_PREFIX}blocks.1.mlp.fc2.lora_B`)!.shape).toEqual([6, 2]);
    const m = adapterMethod(dir, src.toy.sites());
    expect(m).toMatchObject({ id: 'adalora', config: { init_r: 4, target_r: 2, alpha: 2, init_warmup: 10, final_warmup: 10, mask_interval: 5, total_step: 100, targets: ['attn.qkv', 'mlp.fc2'] } });
    const dst = build(m.id, m.config);
    loadAnyAdapter(dir, dst.peft);
    const input = x();
    const [y0, y1] = [src.toy.forward(input), dst.toy.forward(input)];
    expect(maxDiff(y0, y1)).toBe(0);
    tf.dispose([input, y0, y1]);
    src.toy.dispose();
    dst.toy.dispose();
  });
});

describe('trained decoder and the peftjs format', () => {
  it('a trained mask decoder goes to modules_to_save under its own keys, and comes back', async () => {
    const make = () => {
      const b = registry.createBackbone('toy', 'small');
      return { b, peft: compose(b, registry.createMethod('lora', { r: 2, targets: ['mlp.*'] })) };
    };
    const src = make();
    randomise(src.peft, 8);
    const dir = join(tmp, 'decoder');
    await exportHfPeft(dir, src.peft);
    const cfg = readHfPeftConfig(dir);
    expect(cfg.modules_to_save).toEqual(['mask_decoder']);
    const keys = [...readSafetensors(join(dir, 'adapter_model.safetensors')).tensors.keys()].sort();
    expect(keys).toContain('base_model.model.mask_decoder.weight');
    expect(keys).toContain('base_model.model.mask_decoder.bias');
    expect(adapterMethod(dir, src.b.sites()).trainDecoder).toBe(true);
    const dst = make();
    loadHfPeftAdapter(dir, dst.peft);
    const w0 = src.b.model.getModule('mask_decoder').param('weight').variable;
    const w1 = dst.b.model.getModule('mask_decoder').param('weight').variable;
    expect(maxDiff(w0, w1)).toBe(0);
    src.b.model.dispose();
    dst.b.model.dispose();
  });

  it('loadAnyAdapter reads peftjs adapter files too', async () => {
    const src = build('lora', loraConfig);
    randomise(src.peft, 9);
    const dir = join(tmp, 'peftjs-format');
    await saveAdapter(dir, src.peft);
    expect(detectAdapterFormat(dir)).toBe('peftjs');
    expect(adapterMethod(dir, src.toy.sites())).toMatchObject({ format: 'peftjs', id: 'lora', config: loraConfig });
    const dst = build('lora', loraConfig);
    expect(loadAnyAdapter(dir, dst.peft).format).toBe('peftjs');
    const input = x();
    const [y0, y1] = [src.toy.forward(input), dst.toy.forward(input)];
    expect(maxDiff(y0, y1)).toBe(0);
    tf.dispose([input, y0, y1]);
    src.toy.dispose();
    dst.toy.dispose();
  });
});
