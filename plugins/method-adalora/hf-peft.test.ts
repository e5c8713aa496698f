// AdaLoRA's Hugging Face PEFT codec: lora_A/E/B pruned to the rank pattern,
// PEFT's config keys (tinit, tfinal, deltaT, …) both ways, and an exact round
// trip through the files.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EncoderToy } from '../../test/support/encoder-toy.js';
import { HF_PEFT_PREFIX, Registry, adapterMethod, compose, exportHfPeft, loadAnyAdapter, loadHfPeftAdapter, readHfPeftConfig, readSafetensors, tf, type PeftModel } from '../../src/index.js';
import { register } from './index.js';

const registry = new Registry();
register(registry);
const tmp = mkdtempSync(join(tmpdir(), 'peftjs-adalora-hf-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const P = 'image_encoder.blocks';
const adaConfig = { init_r: 4, target_r: 2, alpha: 2, targets: ['attn.qkv', 'mlp.fc2'], total_step: 100, init_warmup: 10, final_warmup: 10, mask_interval: 5 };

function build(config: Record<string, unknown>) {
  const toy = new EncoderToy({ depth: 2, dim: 6, hidden: 8, seed: 3 });
  return { toy, peft: compose(toy, registry.createMethod('adalora', config), { trainDecoder: false }) };
}

function randomise(peft: PeftModel, seed: number) {
  let i = seed * 1000;
  for (const [, p] of peft.trainable()) tf.tidy(() => p.assign(tf.randomUniform(p.shape, -0.5, 0.5, 'float32', ++i)));
}

function outputDiff(a: EncoderToy, b: EncoderToy): number {
  const input = tf.randomUniform([2, 3, 6], -1, 1, 'float32', 21) as tf.Tensor3D;
  const [y0, y1] = [a.forward(input), b.forward(input)];
  const d = tf.tidy(() => tf.max(tf.abs(tf.sub(y0, y1))).dataSync()[0]!);
  tf.dispose([input, y0, y1]);
  return d;
}

describe('AdaLoRA in Hugging Face PEFT format', () => {
  it('writes lora_A/E/B pruned to the rank pattern (no ranknum), and imports exactly', async () => {
    const src = build(adaConfig);
    randomise(src.peft, 7);
    const pattern = { [`${P}.0.attn.qkv`]: [true, false, true, true], [`${P}.1.attn.qkv`]: [true, true, true, true], [`${P}.0.mlp.fc2`]: [false, false, false, true], [`${P}.1.mlp.fc2`]: [true, true, false, false] };
    src.peft.method.loadAdapterState!(src.toy.model, { rank_pattern: pattern });
    const dir = join(tmp, 'adalora');
    await exportHfPeft(dir, src.peft, registry);
    const cfg = readHfPeftConfig(dir);
    expect(cfg).toMatchObject({ peft_type: 'ADALORA', init_r: 4, target_r: 2, lora_alpha: 2, tinit: 10, tfinal: 10, deltaT: 5, total_step: 100, beta1: 0.85, beta2: 0.85, orth_reg_weight: 0.1, r: 8, use_dora: false, layers_to_transform: null });
    // keyed by module path + '.lora_E', init_r entries; a pruned layer lists its kept rows first (only the count matters to PEFT)
    const rp = cfg.rank_pattern as Record<string, boolean[]>;
    const count = (v: boolean[]) => v.filter(Boolean).length;
    expect(Object.keys(rp).sort()).toEqual(Object.keys(pattern).map((k) => `${k}.lora_E`).sort());
    for (const [k, v] of Object.entries(pattern)) {
      expect(rp[`${k}.lora_E`]!.length).toBe(4);
      expect(count(rp[`${k}.lora_E`]!)).toBe(count(v));
    }
    const file = readSafetensors(join(dir, 'adapter_model.safetensors'));
    expect([...file.tensors.keys()].every((k) => /^base_model\.model\.image_encoder\.blocks\.\d\.(attn\.qkv|mlp\.fc2)\.lora_[AEB]$/.test(k))).toBe(true);
    expect(file.tensors.get(`${HF_PEFT_PREFIX}${P}.0.attn.qkv.lora_A`)!.shape).toEqual([3, 6]);
    expect(file.tensors.get(`${HF_PEFT_PREFIX}${P}.0.mlp.fc2.lora_E`)!.shape).toEqual([1, 1]);
    expect(file.tensors.get(`${HF_PEFT_PREFIX}${P}.1.mlp.fc2.lora_B`)!.shape).toEqual([6, 2]);
    const m = adapterMethod(dir, { sites: src.toy.sites(), decoderPath: src.toy.decoderPath }, registry);
    expect(m).toEqual({
      format: 'hf-peft',
      id: 'adalora',
      trainDecoder: false,
      config: { init_r: 4, target_r: 2, alpha: 2, dropout: 0, init_warmup: 10, final_warmup: 10, mask_interval: 5, total_step: 100, beta1: 0.85, beta2: 0.85, orth_reg_weight: 0.1, targets: ['attn.qkv', 'mlp.fc2'] },
    });
    const dst = build(m.config);
    loadAnyAdapter(dir, dst.peft, registry);
    expect(outputDiff(src.toy, dst.toy)).toBe(0);
    src.toy.dispose();
    dst.toy.dispose();
  });

  it('reads PEFT files that still name the adapter, and refuses a LORA adapter for an adalora model', async () => {
    const src = build({ ...adaConfig, targets: ['mlp.fc2'] });
    randomise(src.peft, 8);
    const dir = join(tmp, 'adalora-names');
    await exportHfPeft(dir, src.peft, registry);
    // rank_pattern keys as PEFT's allocator writes them before save_pretrained strips the adapter name
    const cfgPath = join(dir, 'adapter_config.json');
    const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
    cfg.rank_pattern = { [`${P}.0.mlp.fc2.lora_E.default`]: [true, false, true, false], [`${P}.1.mlp.fc2.lora_E.default`]: [true, true, true, true] };
    writeFileSync(cfgPath, JSON.stringify(cfg));
    const dst = build({ ...adaConfig, targets: ['mlp.fc2'] });
    // the file holds rank 4 for blocks.0: the pattern keeps 2, so the shapes disagree, named
    expect(() => loadHfPeftAdapter(dir, dst.peft, registry)).toThrow(/'base_model\.model\.image_encoder\.blocks\.0\.mlp\.fc2\.lora_A' has shape \[4,8\] but the model expects \[2,8\]/);
    writeFileSync(cfgPath, JSON.stringify({ ...cfg, peft_type: 'LORA' }));
    expect(() => loadHfPeftAdapter(dir, build(adaConfig).peft, registry)).toThrow(/peft_type 'LORA' is read by no loaded method \(types read here: ADALORA \(adalora\)\)/);
    src.toy.dispose();
    dst.toy.dispose();
  });
});
