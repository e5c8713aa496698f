// LoRA's Hugging Face PEFT codec: the files PEFT's LoraModel reads (keys,
// config, grouped q/v as a block-structured rank r*k LoRA), the exact round
// trip, group detection (also a single group, k = 1), PEFT's module selection
// rules on import, and the configs it cannot represent, each named.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EncoderToy } from '../../test/support/encoder-toy.js';
import {
  HF_PEFT_PREFIX,
  Registry,
  adapterMethod,
  compose,
  detectAdapterFormat,
  exportHfPeft,
  loadAnyAdapter,
  loadHfPeftAdapter,
  readHfPeftConfig,
  readSafetensors,
  saveAdapter,
  serializeSafetensors,
  tf,
  toFloat32,
  type PeftModel,
} from '../../src/index.js';
import { detectGroups, fullToGroupedB, groupedToFullB, GroupedLoraLinear, register } from './index.js';

const registry = new Registry();
register(registry);
const tmp = mkdtempSync(join(tmpdir(), 'peftjs-lora-hf-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const spec = { depth: 2, dim: 6, hidden: 8, seed: 3 };
const x = () => tf.randomUniform([2, 3, 6], -1, 1, 'float32', 21) as tf.Tensor3D;
const Q = 'image_encoder.blocks.0.attn.qkv';

function build(config: Record<string, unknown>, options: { depth?: number; trainDecoder?: boolean } = {}) {
  const toy = new EncoderToy({ ...spec, depth: options.depth ?? spec.depth });
  const peft = compose(toy, registry.createMethod('lora', config), { trainDecoder: options.trainDecoder ?? false });
  return { toy, peft };
}

function randomise(peft: PeftModel, seed = 1) {
  let i = seed * 1000;
  for (const [, p] of peft.trainable()) tf.tidy(() => p.assign(tf.randomUniform(p.shape, -0.5, 0.5, 'float32', ++i)));
}

function maxDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

/** The largest output difference of two toys on the same input. */
function outputDiff(a: EncoderToy, b: EncoderToy): number {
  const input = x();
  const [y0, y1] = [a.forward(input), b.forward(input)];
  const d = maxDiff(y0, y1);
  tf.dispose([input, y0, y1]);
  return d;
}

/** Rewrites an exported adapter: its config (merged) and optionally its tensors. */
function rewrite(dir: string, config: Record<string, unknown>, tensors?: (key: string, v: Float32Array, shape: number[]) => { v: Float32Array; shape: number[] } | null) {
  const cfgPath = join(dir, 'adapter_config.json');
  writeFileSync(cfgPath, JSON.stringify({ ...JSON.parse(readFileSync(cfgPath, 'utf8')), ...config }));
  if (!tensors) return;
  const file = readSafetensors(join(dir, 'adapter_model.safetensors'));
  const entries = new Map<string, { dtype: 'F32'; shape: number[]; data: Float32Array }>();
  for (const [k, raw] of file.tensors) {
    const t = tensors(k, toFloat32(raw), raw.shape);
    if (t) entries.set(k, { dtype: 'F32', shape: t.shape, data: t.v });
  }
  writeFileSync(join(dir, 'adapter_model.safetensors'), serializeSafetensors(entries));
}

const host = (toy: EncoderToy) => ({ sites: toy.sites(), decoderPath: toy.decoderPath });
const loraConfig = { r: 2, alpha: 3, bias: 'lora_only', targets: ['attn.qkv[q,v]', 'mlp.fc1'] };

describe('LoRA export', () => {
  it('writes adapter_config.json and base_model.model.<path>.lora_A/B.weight keys', async () => {
    const { toy, peft } = build(loraConfig);
    randomise(peft);
    const dir = join(tmp, 'lora');
    await exportHfPeft(dir, peft, registry, { baseModel: 'facebook/sam-vit-base' });
    const cfg = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
    expect(cfg).toMatchObject({
      peft_type: 'LORA',
      r: 2,
      lora_alpha: 3,
      lora_dropout: 0,
      bias: 'lora_only',
      fan_in_fan_out: false,
      use_rslora: false,
      use_dora: false,
      task_type: null,
      inference_mode: true,
      base_model_name_or_path: 'facebook/sam-vit-base',
      modules_to_save: null,
      layers_to_transform: null,
      layers_pattern: null,
      exclude_modules: null,
      // grouped q,v (k = 2) is a rank r*k LoRA with alpha*k: the same scaling alpha / r; keyed by the
      // escaped path without its first component (PEFT matches `.*\.{key}$` on the module name)
      rank_pattern: { 'blocks\\.0\\.attn\\.qkv': 4, 'blocks\\.1\\.attn\\.qkv': 4 },
      alpha_pattern: { 'blocks\\.0\\.attn\\.qkv': 6, 'blocks\\.1\\.attn\\.qkv': 6 },
    });
    expect([...cfg.target_modules].sort()).toEqual([Q, 'image_encoder.blocks.0.mlp.fc1', 'image_encoder.blocks.1.attn.qkv', 'image_encoder.blocks.1.mlp.fc1']);
    const file = readSafetensors(join(dir, 'adapter_model.safetensors'));
    const keys = [...file.tensors.keys()].sort();
    for (const k of keys) expect(k).toMatch(/^base_model\.model\.image_encoder\.blocks\.\d\.(attn\.qkv|mlp\.fc1)\.(lora_[AB]\.weight|base_layer\.bias)$/);
    expect(keys.filter((k) => k.includes('lora_'))).toHaveLength(8);
    // bias 'lora_only': the adapted layers' biases, where PEFT keeps them (base_layer)
    expect(keys.filter((k) => k.endsWith('.base_layer.bias'))).toHaveLength(4);
    expect(file.tensors.get(`${HF_PEFT_PREFIX}${Q}.lora_A.weight`)!.shape).toEqual([4, 6]);
    expect(file.tensors.get(`${HF_PEFT_PREFIX}${Q}.lora_B.weight`)!.shape).toEqual([18, 4]);
    expect(file.tensors.get(`${HF_PEFT_PREFIX}image_encoder.blocks.0.mlp.fc1.lora_B.weight`)!.shape).toEqual([8, 2]);
    expect(file.metadata.format).toBe('pt');
    expect(detectAdapterFormat(dir)).toBe('hf-peft');
    toy.dispose();
  });

  it('the grouped → full conversion gives the same update (to 1e-6), and is undone exactly', async () => {
    const { toy, peft } = build({ r: 3, alpha: 5, targets: ['attn.qkv[q,v]'] });
    randomise(peft, 2);
    const layer = toy.model.getModule(Q) as GroupedLoraLinear;
    const a = layer.param('lora_A').variable;
    const b = layer.param('lora_B').variable;
    const full = groupedToFullB((await b.data()) as Float32Array, layer.enabled, layer.groupWidth, 3);
    const k = 2;
    const hfDelta = tf.tidy(() => tf.mul(tf.matMul(tf.tensor(full, [18, 6]), a), (5 * k) / (3 * k)));
    const ours = layer.deltaWeight();
    expect(maxDiff(hfDelta, ours)).toBeLessThan(1e-6);
    // the k group's rows are exactly zero
    expect(Array.from(full.subarray(6 * 6, 12 * 6)).every((v) => v === 0)).toBe(true);
    expect(Array.from(fullToGroupedB(full, layer.enabled, 6, 3, 'x'))).toEqual(Array.from(await b.data()));
    expect(detectGroups(full, 3, 18, 6).enabled).toEqual([true, false, true]);
    tf.dispose([hfDelta, ours]);
    toy.dispose();
  });

  it('export then import reproduces the outputs exactly (grouped and plain layers, lora_only biases)', async () => {
    const src = build(loraConfig);
    randomise(src.peft, 3);
    const dir = join(tmp, 'lora-rt');
    await exportHfPeft(dir, src.peft, registry);
    const dst = build(loraConfig);
    const r = loadHfPeftAdapter(dir, dst.peft, registry);
    expect(r.loaded).toHaveLength(12);
    expect(outputDiff(src.toy, dst.toy)).toBe(0);
    src.toy.dispose();
    dst.toy.dispose();
  });
});

describe('LoRA import: the peftjs config an adapter asks for', () => {
  it('translates an HF adapter (grouped q,v detected), which then loads it', async () => {
    const src = build({ r: 2, alpha: 2, rslora: true, targets: ['attn.qkv[q,v]', 'mlp.fc2'] });
    randomise(src.peft, 4);
    const dir = join(tmp, 'lora-derive');
    await exportHfPeft(dir, src.peft, registry);
    const m = adapterMethod(dir, host(src.toy), registry);
    expect(m).toEqual({ format: 'hf-peft', id: 'lora', trainDecoder: false, config: { r: 2, alpha: 2, dropout: 0, rslora: true, bias: 'none', targets: ['attn.qkv[q,v]', 'mlp.fc2'] } });
    const dst = build(m.config);
    loadAnyAdapter(dir, dst.peft, registry);
    expect(outputDiff(src.toy, dst.toy)).toBeLessThan(1e-6);
    src.toy.dispose();
    dst.toy.dispose();
  });

  it('a single group (attn.qkv[q], k = 1: rank equals r) comes back grouped, not as whole-qkv LoRA', async () => {
    const src = build({ r: 2, alpha: 3, targets: ['attn.qkv[q]'] });
    randomise(src.peft, 5);
    const dir = join(tmp, 'lora-k1');
    await exportHfPeft(dir, src.peft, registry);
    const cfg = readHfPeftConfig(dir);
    // PEFT builds a rank-2 LoRA with alpha 3: the pattern says so explicitly, and lora_B's k and v rows are zero
    expect(cfg.rank_pattern).toEqual({ 'blocks\\.0\\.attn\\.qkv': 2, 'blocks\\.1\\.attn\\.qkv': 2 });
    expect(cfg.alpha_pattern).toEqual({ 'blocks\\.0\\.attn\\.qkv': 3, 'blocks\\.1\\.attn\\.qkv': 3 });
    const b = toFloat32(readSafetensors(join(dir, 'adapter_model.safetensors')).tensors.get(`${HF_PEFT_PREFIX}${Q}.lora_B.weight`)!);
    expect(b.length).toBe(18 * 2);
    expect(b.subarray(6 * 2).every((v) => v === 0)).toBe(true);
    const m = adapterMethod(dir, host(src.toy), registry);
    expect(m.config).toMatchObject({ r: 2, alpha: 3, targets: ['attn.qkv[q]'] });
    const dst = build(m.config);
    expect(dst.toy.model.getModule(Q)).toBeInstanceOf(GroupedLoraLinear);
    loadAnyAdapter(dir, dst.peft, registry);
    expect(outputDiff(src.toy, dst.toy)).toBeLessThan(1e-6);
    // a trained whole-layer LoRA of the same rank is read as whole-layer
    const whole = build({ r: 2, alpha: 3, targets: ['attn.qkv'] });
    randomise(whole.peft, 6);
    const wholeDir = join(tmp, 'lora-whole');
    await exportHfPeft(wholeDir, whole.peft, registry);
    expect(adapterMethod(wholeDir, host(whole.toy), registry).config).toMatchObject({ targets: ['attn.qkv'] });
    for (const t of [src, dst, whole]) t.toy.dispose();
  });

  it('honours layers_to_transform (+ layers_pattern) and exclude_modules, as PEFT selects modules', async () => {
    const src = build({ r: 2, targets: ['/^image_encoder\\.blocks\\.[02]\\.(attn\\.qkv|mlp\\.fc1)$/'] }, { depth: 3 });
    randomise(src.peft, 7);
    const dir = join(tmp, 'lora-layers');
    await exportHfPeft(dir, src.peft, registry);
    const want = ['/^(image_encoder\\.blocks\\.0\\.attn\\.qkv|image_encoder\\.blocks\\.2\\.attn\\.qkv)$/', '/^(image_encoder\\.blocks\\.0\\.mlp\\.fc1|image_encoder\\.blocks\\.2\\.mlp\\.fc1)$/'];
    // what a PEFT user writes: suffixes and the layer indices (after 'blocks', or PEFT's default: after the second name)
    for (const layers_pattern of ['blocks', null]) {
      rewrite(dir, { target_modules: ['qkv', 'fc1'], layers_to_transform: [0, 2], layers_pattern });
      expect(adapterMethod(dir, host(src.toy), registry).config.targets).toEqual(want);
    }
    // the same selection by exclude_modules (a '.'-suffix or an exact name)
    rewrite(dir, { layers_to_transform: null, layers_pattern: null, exclude_modules: ['blocks.1.attn.qkv', 'image_encoder.blocks.1.mlp.fc1'] });
    const m = adapterMethod(dir, host(src.toy), registry);
    expect(m.config.targets).toEqual(want);
    const dst = build(m.config, { depth: 3 });
    loadAnyAdapter(dir, dst.peft, registry);
    expect(outputDiff(src.toy, dst.toy)).toBeLessThan(1e-6);
    // a module with tensors that the config does not select is named, not skipped
    rewrite(dir, { exclude_modules: null, layers_to_transform: 0 });
    expect(() => adapterMethod(dir, host(src.toy), registry)).toThrow("'image_encoder.blocks.2.attn.qkv' has LoRA tensors but 'target_modules' (with exclude_modules, layers_to_transform) does not select it");
    // PEFT's own config check: no layer filter with a regex target_modules
    rewrite(dir, { target_modules: '.*qkv' });
    expect(() => adapterMethod(dir, host(src.toy), registry)).toThrow(/'layers_to_transform'\/'layers_pattern' cannot be used when 'target_modules' is a regular expression/);
    src.toy.dispose();
    dst.toy.dispose();
  });

  it('a plain PEFT LoRA (other alpha, not grouped) loads with its scaling folded into B', async () => {
    const src = build({ r: 2, alpha: 4, targets: ['attn.proj'] });
    randomise(src.peft, 8);
    const dir = join(tmp, 'lora-alpha');
    await exportHfPeft(dir, src.peft, registry);
    // as if PEFT had trained it with lora_alpha 8: B must be scaled by 2 to give the same update under alpha 4
    rewrite(dir, { lora_alpha: 8 }, (k, v, shape) => ({ v: k.includes('lora_B') ? v.map((e) => e / 2) : v, shape }));
    const dst = build({ r: 2, alpha: 4, targets: ['attn.proj'] });
    loadHfPeftAdapter(dir, dst.peft, registry);
    expect(outputDiff(src.toy, dst.toy)).toBeLessThan(1e-6);
    src.toy.dispose();
    dst.toy.dispose();
  });

  it('per-module ranks it cannot represent get their own message, naming the module and the ranks', async () => {
    const src = build({ r: 2, targets: ['mlp.fc1'] });
    randomise(src.peft, 9);
    const dir = join(tmp, 'lora-ranks');
    await exportHfPeft(dir, src.peft, registry);
    // PEFT with rank_pattern {'0.mlp.fc1': 4}: blocks.0.mlp.fc1 has rank 4, blocks.1.mlp.fc1 rank 2
    rewrite(dir, { rank_pattern: { '0\\.mlp\\.fc1': 4 } }, (k, v, shape) => {
      if (!k.includes('blocks.0.mlp.fc1.lora_')) return { v, shape };
      return k.includes('lora_A') ? { v: new Float32Array(4 * 6).fill(0.1), shape: [4, 6] } : { v: new Float32Array(8 * 4).fill(0.1), shape: [8, 4] };
    });
    expect(() => adapterMethod(dir, host(src.toy), registry)).toThrow(
      "per-module ranks cannot be represented: 'image_encoder.blocks.0.mlp.fc1' has rank 4 (rank_pattern) but 'image_encoder.blocks.1.mlp.fc1' has rank 2; peftjs's lora has one rank r for every layer",
    );
    src.toy.dispose();
  });

  it('refuses what it cannot represent, naming it', async () => {
    const src = build({ r: 2, targets: ['attn.qkv'] });
    randomise(src.peft, 10);
    const dir = join(tmp, 'lora-full');
    await exportHfPeft(dir, src.peft, registry);
    const grouped = build({ r: 2, targets: ['attn.qkv[q,v]'] });
    expect(() => loadHfPeftAdapter(dir, grouped.peft, registry)).toThrow(/'base_model\.model\.image_encoder\.blocks\.0\.attn\.qkv\.lora_A\.weight' has shape \[2,6\] but the model expects \[4,6\]/);
    const qv = build({ r: 2, targets: ['attn.qkv[q,v]'] });
    randomise(qv.peft, 11);
    const qvDir = join(tmp, 'lora-qv');
    await exportHfPeft(qvDir, qv.peft, registry);
    const qk = build({ r: 2, targets: ['attn.qkv[q,k]'] });
    expect(() => loadHfPeftAdapter(qvDir, qk.peft, registry)).toThrow(/'image_encoder\.blocks\.0\.attn\.qkv': lora_B is not block-structured for groups \[1,1,0\]/);
    const other = build({ r: 2, targets: ['mlp.fc1'] });
    expect(() => loadHfPeftAdapter(dir, other.peft, registry)).toThrow(/missing tensor 'base_model\.model\.image_encoder\.blocks\.0\.mlp\.fc1\.lora_A\.weight'/);
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ use_dora: true }, /method 'lora' does not read it: it is a DoRA adapter \(use_dora: true\)/],
      [{ fan_in_fan_out: true }, /fan_in_fan_out adapters are not supported/],
      [{ init_lora_weights: 'pissa_niter_4' }, /'init_lora_weights' "pissa_niter_4": this adapter is relative to base weights pissa changed/],
      [{ lora_bias: true }, /'lora_bias' \(a trained bias on lora_B\) has no peftjs form/],
      [{ bias: 'some' }, /'bias' must be none, all or lora_only/],
      [{ modules_to_save: ['neck'] }, /'modules_to_save' names 'neck', but besides the method peftjs trains only the mask decoder \('mask_decoder'\)/],
    ];
    const cfgPath = join(dir, 'adapter_config.json');
    const original = readFileSync(cfgPath, 'utf8');
    for (const [change, message] of cases) {
      rewrite(dir, change);
      expect(() => adapterMethod(dir, host(src.toy), registry), JSON.stringify(change)).toThrow(message);
      writeFileSync(cfgPath, original);
    }
    for (const t of [src, grouped, qv, qk, other]) t.toy.dispose();
  });
});

describe('LoRA adapters and the mask decoder', () => {
  it('a trained decoder goes to modules_to_save and comes back; adapterMethod says the decoder trains', async () => {
    const src = build({ r: 2, targets: ['mlp.*'] }, { trainDecoder: true });
    randomise(src.peft, 12);
    const dir = join(tmp, 'lora-decoder');
    await exportHfPeft(dir, src.peft, registry);
    expect(readHfPeftConfig(dir).modules_to_save).toEqual(['mask_decoder']);
    expect(adapterMethod(dir, host(src.toy), registry).trainDecoder).toBe(true);
    const dst = build({ r: 2, targets: ['mlp.*'] }, { trainDecoder: true });
    loadHfPeftAdapter(dir, dst.peft, registry);
    expect(maxDiff(src.toy.model.getModule('mask_decoder').param('weight').variable, dst.toy.model.getModule('mask_decoder').param('weight').variable)).toBe(0);
    // the peftjs format says the same through its saved tensors
    const pj = join(tmp, 'lora-decoder-peftjs');
    await saveAdapter(pj, src.peft);
    expect(adapterMethod(pj, host(src.toy), registry)).toMatchObject({ format: 'peftjs', id: 'lora', trainDecoder: true });
    src.toy.dispose();
    dst.toy.dispose();
  });
});
