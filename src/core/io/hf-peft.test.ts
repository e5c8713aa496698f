// The generic Hugging Face PEFT mechanism, with a tiny method defined here
// (a learned output gain, peft_type GAIN): the two files, PEFT's prefix and
// adapter names, modules_to_save, trained biases, base_model_name_or_path,
// dispatch by peft_type, PEFT's module selection rules, and one-line errors.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { afterAll, describe, expect, it } from 'vitest';
import { EncoderToy } from '../../../test/support/encoder-toy.js';
import { PeftError } from '../errors.js';
import { Module } from '../nn/module.js';
import type { Parameter } from '../nn/parameter.js';
import { compose, type PeftModel } from '../peft/compose.js';
import type { InjectionSite, LinearSite } from '../peft/injection-site.js';
import type { LayerInjector } from '../peft/layer-injector.js';
import { selectLinearSites } from '../peft/site-selector.js';
import type { MethodDefinition } from '../registry/definitions.js';
import { Registry } from '../registry/registry.js';
import { saveAdapter } from './adapter-files.js';
import type { HfPeftCodec } from './hf-peft-codec.js';
import {
  HF_PEFT_PREFIX,
  adapterMethod,
  detectAdapterFormat,
  exportHfPeft,
  hfTensor,
  isHubModelId,
  loadAnyAdapter,
  loadHfPeftAdapter,
  patternKey,
  patternValue,
  peftSelectedModules,
  readHfPeftConfig,
  siteTargets,
} from './hf-peft.js';
import { readSafetensors, serializeSafetensors, toFloat32 } from './safetensors.js';

const tmp = mkdtempSync(join(tmpdir(), 'peftjs-hf-peft-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** y = (x W^T + b) * gain: a learned per-output gain, ones at init. */
class GainLinear extends Module {
  constructor(readonly path: string, weight: Parameter, bias: Parameter | undefined, readonly out: number) {
    super();
    this.adoptParameter('weight', weight);
    if (bias) this.adoptParameter('bias', bias);
    this.registerParameter('gain', tf.ones([out]));
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const lead = x.shape.slice(0, -1);
      const x2 = tf.reshape(x, [-1, x.shape[x.shape.length - 1]!]);
      let y = tf.matMul(x2, this.param('weight').variable, false, true);
      if (this.hasParam('bias')) y = tf.add(y, this.param('bias').variable);
      return tf.reshape(tf.mul(y, this.param('gain').variable), [...lead, this.out]);
    });
  }
}

const gainSchema = z.strictObject({
  targets: z.array(z.string()).default(['mlp.fc1']).describe('sites'),
  bias: z.boolean().default(false).describe("train the adapted layers' biases"),
  unfreeze: z.boolean().default(false).describe('(a plugin bug) make the base weight trainable'),
});
type GainConfig = z.output<typeof gainSchema>;

class GainInjector implements LayerInjector {
  readonly id: string;
  constructor(readonly config: GainConfig, id = 'gain') {
    this.id = id;
  }
  select(sites: InjectionSite[]): InjectionSite[] {
    return selectLinearSites(sites, this.config.targets, 'gain').map((s) => s.site);
  }
  inject(model: Module, site: InjectionSite): void {
    const base = model.getModule(site.path);
    const s = site as LinearSite;
    const layer = new GainLinear(site.path, base.param('weight'), base.hasParam('bias') ? base.param('bias') : undefined, s.out);
    model.setModule(site.path, layer);
    if (this.config.bias && base.hasParam('bias')) base.param('bias').trainable = true;
    if (this.config.unfreeze) base.param('weight').trainable = true;
  }
  parameterCount(site: InjectionSite): number {
    return site.kind === 'linear' ? site.out : 0;
  }
}

const gainLayers = (model: Module) => [...model.namedModules()].filter((e): e is [string, GainLinear] => e[1] instanceof GainLinear);

/** The tiny method's codec: `<path>.gain` [out], config keys `target_modules` and `gain_bias`. */
function gainCodec(declines?: (c: Readonly<Record<string, unknown>>) => string | undefined, extra: Record<string, unknown> = {}): HfPeftCodec<GainConfig> {
  return {
    peftTypes: ['GAIN'],
    declines,
    async exportAdapter({ model }, config) {
      const layers = gainLayers(model);
      const tensors = new Map();
      for (const [path, l] of layers) tensors.set(`${path}.gain`, await hfTensor(l.param('gain').variable));
      return { adaptedPaths: layers.map(([p]) => p), tensors, config: { gain_bias: config.bias, ...extra } };
    },
    methodConfig(adapter, sites) {
      const chosen = sites.selected.filter((s): s is LinearSite => s.kind === 'linear').map((site) => ({ site }));
      if (chosen.length === 0) adapter.fail("'target_modules' selects no linear site");
      return { targets: siteTargets(chosen, sites.all, adapter.configPath), bias: adapter.boolean('gain_bias', false) };
    },
    loadAdapter(adapter, { model }) {
      for (const [path, l] of gainLayers(model)) {
        const p = l.param('gain');
        adapter.stage(p, adapter.float32(`${path}.gain`, p.shape, `gain of '${path}'`), `${path}.gain`);
      }
    },
  };
}

const gainMethod = (id: string, codec?: HfPeftCodec<GainConfig>): MethodDefinition<GainConfig> => ({
  id,
  summary: `a test method (${id})`,
  schema: gainSchema,
  create: (c) => new GainInjector(c, id),
  hfPeft: codec,
});

const registry = new Registry();
registry.registerMethod(gainMethod('gain', gainCodec((c) => (c.variant === 'two' ? 'it is the second variant' : undefined))));
registry.registerMethod(gainMethod('gain2', gainCodec((c) => (c.variant === 'two' ? undefined : 'not the second variant'))));
registry.registerMethod(gainMethod('plain'));

function build(id: string, config: Record<string, unknown> = {}, trainDecoder = false) {
  const toy = new EncoderToy({ depth: 2, dim: 6, hidden: 8, seed: 3 });
  return { toy, peft: compose(toy, registry.createMethod(id, config), { trainDecoder }) };
}

function randomise(peft: PeftModel, seed: number) {
  let i = seed * 1000;
  for (const [, p] of peft.trainable()) tf.tidy(() => p.assign(tf.randomUniform(p.shape, 0.5, 1.5, 'float32', ++i)));
}

function outputDiff(a: EncoderToy, b: EncoderToy): number {
  const input = tf.randomUniform([2, 3, 6], -1, 1, 'float32', 21) as tf.Tensor3D;
  const [y0, y1] = [a.forward(input), b.forward(input)];
  const d = tf.tidy(() => tf.max(tf.abs(tf.sub(y0, y1))).dataSync()[0]!);
  tf.dispose([input, y0, y1]);
  return d;
}

const host = (toy: EncoderToy) => ({ sites: toy.sites(), decoderPath: toy.decoderPath });
const FC1 = 'image_encoder.blocks.0.mlp.fc1';

/** Rewrites an adapter's config (merged) and its tensors' keys. */
function rewrite(dir: string, config: Record<string, unknown>, rename?: (key: string) => string | null) {
  const cfgPath = join(dir, 'adapter_config.json');
  writeFileSync(cfgPath, JSON.stringify({ ...JSON.parse(readFileSync(cfgPath, 'utf8')), ...config }));
  if (!rename) return;
  const file = readSafetensors(join(dir, 'adapter_model.safetensors'));
  const entries = new Map<string, { dtype: 'F32'; shape: number[]; data: Float32Array }>();
  for (const [k, raw] of file.tensors) {
    const to = rename(k);
    if (to !== null) entries.set(to, { dtype: 'F32', shape: raw.shape, data: toFloat32(raw) });
  }
  writeFileSync(join(dir, 'adapter_model.safetensors'), serializeSafetensors(entries));
}

describe('export: the files every method shares', () => {
  it("writes core's keys around the codec's part, the prefix, modules_to_save and trained biases; loads back exactly", async () => {
    const src = build('gain', { targets: ['mlp.fc1', 'attn.proj'], bias: true }, true);
    randomise(src.peft, 1);
    const dir = join(tmp, 'gain');
    const r = await exportHfPeft(dir, src.peft, registry);
    const cfg = readHfPeftConfig(dir);
    expect(cfg).toEqual({
      peft_type: 'GAIN',
      task_type: null,
      base_model_name_or_path: null,
      revision: null,
      inference_mode: true,
      target_modules: ['image_encoder.blocks.0.attn.proj', FC1, 'image_encoder.blocks.1.attn.proj', 'image_encoder.blocks.1.mlp.fc1'],
      gain_bias: true,
      modules_to_save: ['mask_decoder'],
    });
    expect(r.tensors).toEqual(
      [
        ...['0', '1'].flatMap((b) => ['attn.proj', 'mlp.fc1'].flatMap((m) => [`image_encoder.blocks.${b}.${m}.gain`, `image_encoder.blocks.${b}.${m}.base_layer.bias`])),
        'mask_decoder.weight',
        'mask_decoder.bias',
      ]
        .map((k) => `${HF_PEFT_PREFIX}${k}`)
        .sort(),
    );
    const file = readSafetensors(join(dir, 'adapter_model.safetensors'));
    expect([...file.tensors.keys()].sort()).toEqual(r.tensors);
    // which method and backbone wrote it: in the metadata, not in PEFT's config
    expect(file.metadata).toMatchObject({ format: 'pt', 'peftjs.method': 'gain', 'peftjs.backbone': 'encoder-toy' });
    const m = adapterMethod(dir, host(src.toy), registry);
    expect(m).toEqual({ format: 'hf-peft', id: 'gain', trainDecoder: true, config: { targets: ['attn.proj', 'mlp.fc1'], bias: true } });
    const dst = build(m.id, m.config, m.trainDecoder);
    const loaded = loadAnyAdapter(dir, dst.peft, registry);
    expect(loaded).toEqual({ format: 'hf-peft', loaded: r.tensors.map((k) => k.slice(HF_PEFT_PREFIX.length)).sort() });
    expect(outputDiff(src.toy, dst.toy)).toBe(0);
    const w = (t: EncoderToy) => t.model.getModule('mask_decoder').param('weight').variable;
    expect(tf.tidy(() => tf.max(tf.abs(tf.sub(w(src.toy), w(dst.toy)))).dataSync()[0])).toBe(0);
    src.toy.dispose();
    dst.toy.dispose();
  });

  it('base_model_name_or_path is a model id or null, never a local path', async () => {
    expect(isHubModelId('my-org/vit-base')).toBe(true);
    expect(isHubModelId('vit-base.v2')).toBe(true);
    for (const bad of ['vit_b_01ec64.pth', 'model.pt', '/ckpt/weights.safetensors', './weights', '../x/y', 'a/b/c', 'org/', tmp, '']) expect(isHubModelId(bad), bad).toBe(false);
    const local = join(tmp, 'my-org');
    mkdirSync(local);
    const cwd = process.cwd();
    process.chdir(tmp);
    try {
      expect(isHubModelId('my-org')).toBe(false); // a folder here, so PEFT would read it as a local path
    } finally {
      process.chdir(cwd);
    }
    const src = build('gain');
    await exportHfPeft(join(tmp, 'hub'), src.peft, registry, { baseModel: 'my-org/vit-base' });
    expect(readHfPeftConfig(join(tmp, 'hub')).base_model_name_or_path).toBe('my-org/vit-base');
    await expect(exportHfPeft(join(tmp, 'path'), src.peft, registry, { baseModel: '/data/vit_b_01ec64.pth' })).rejects.toThrow(
      "base model '/data/vit_b_01ec64.pth' is not a Hugging Face model id (name or org/name): base_model_name_or_path is a model id or null, never a local file",
    );
    src.toy.dispose();
  });

  it('refuses, in one line naming it: no codec, a codec that sets core keys, a trainable tensor with no place', async () => {
    const plain = build('plain');
    await expect(exportHfPeft(join(tmp, 'no'), plain.peft, registry)).rejects.toThrow("method 'plain' has no Hugging Face PEFT codec (methods with one: gain, gain2); export it with --format peftjs");
    const rogue = new Registry();
    rogue.registerMethod(gainMethod('gain', gainCodec(undefined, { modules_to_save: ['x'] })));
    const setsCore = build('gain');
    await expect(exportHfPeft(join(tmp, 'core'), setsCore.peft, rogue)).rejects.toThrow("method 'gain': its Hugging Face PEFT codec sets 'modules_to_save', which core writes");
    // a layer that unfreezes the base weight: the weight would land in the adapter
    const unfrozen = build('gain', { unfreeze: true });
    await expect(exportHfPeft(join(tmp, 'unfrozen'), unfrozen.peft, registry)).rejects.toThrow(
      "trainable tensor 'image_encoder.blocks.0.mlp.fc1.weight' has no place in a Hugging Face PEFT adapter (not the method's, not a bias, not the mask decoder); export with --format peftjs",
    );
    for (const t of [plain, setsCore, unfrozen]) t.toy.dispose();
  });
});

describe('import: reading what PEFT wrote', () => {
  it("strips PEFT's adapter name ('.default', 'modules_to_save.default') and loads by the stripped names", async () => {
    const src = build('gain', {}, true);
    randomise(src.peft, 2);
    const dir = join(tmp, 'names');
    await exportHfPeft(dir, src.peft, registry);
    rewrite(dir, {}, (k) => (k.endsWith('.gain') ? `${k}.default` : k.replace('mask_decoder.', 'mask_decoder.modules_to_save.default.')));
    const keys = [...readSafetensors(join(dir, 'adapter_model.safetensors')).tensors.keys()];
    expect(keys).toContain(`${HF_PEFT_PREFIX}${FC1}.gain.default`);
    expect(keys).toContain(`${HF_PEFT_PREFIX}mask_decoder.modules_to_save.default.weight`);
    const dst = build('gain', {}, true);
    loadHfPeftAdapter(dir, dst.peft, registry);
    expect(outputDiff(src.toy, dst.toy)).toBe(0);
    src.toy.dispose();
    dst.toy.dispose();
  });

  it('dispatches by peft_type and declines, and names the method, the type or the codecs when it cannot', async () => {
    const src = build('gain');
    randomise(src.peft, 3);
    const dir = join(tmp, 'dispatch');
    await exportHfPeft(dir, src.peft, registry);
    expect(adapterMethod(dir, host(src.toy), registry).id).toBe('gain');
    rewrite(dir, { variant: 'two' });
    expect(adapterMethod(dir, host(src.toy), registry).id).toBe('gain2');
    expect(() => loadHfPeftAdapter(dir, src.peft, registry)).toThrow(/: a GAIN adapter needs method 'gain2', the model has 'gain'$/);
    // only the methods passed in are seen
    expect(() => adapterMethod(dir, host(src.toy), registry.methods().filter((d) => d.id === 'gain'))).toThrow(/method 'gain' does not read it: it is the second variant$/);
    const both = [gainMethod('a', gainCodec()), gainMethod('b', gainCodec())];
    expect(() => adapterMethod(dir, host(src.toy), both)).toThrow(/methods 'a' and 'b' all read peft_type 'GAIN' with this config; one of them should decline it/);
    rewrite(dir, { peft_type: 'BOFT' });
    expect(() => adapterMethod(dir, host(src.toy), registry)).toThrow(/peft_type 'BOFT' is read by no loaded method \(types read here: GAIN \(gain, gain2\)\); load the plugin that provides it/);
    rewrite(dir, { peft_type: 7 });
    expect(() => detectAdapterFormat(dir)).toThrow(/neither a peftjs adapter/);
    src.toy.dispose();
  });

  it('a key the model cannot take is an error, and nothing is assigned', async () => {
    const src = build('gain');
    randomise(src.peft, 4);
    const dir = join(tmp, 'stray');
    await exportHfPeft(dir, src.peft, registry);
    rewrite(dir, {}, (k) => (k.includes('blocks.1') ? k.replace('.gain', '.weight') : k));
    const dst = build('gain');
    const before = dst.toy.model.getModule(FC1).param('gain').variable.dataSync().slice();
    expect(() => loadHfPeftAdapter(dir, dst.peft, registry)).toThrow(/missing tensor 'base_model\.model\.image_encoder\.blocks\.1\.mlp\.fc1\.gain' \(gain of/);
    // the codec took everything it wanted, but a base weight is not a method tensor, bias or modules_to_save
    rewrite(dir, {}, (k) => (k.includes('blocks.1') ? k.replace('.weight', '.gain') : k));
    const file = readSafetensors(join(dir, 'adapter_model.safetensors'));
    const entries = new Map([...file.tensors].map(([k, raw]) => [k, { dtype: 'F32' as const, shape: raw.shape, data: toFloat32(raw) }]));
    entries.set(`${HF_PEFT_PREFIX}${FC1}.weight`, { dtype: 'F32', shape: [8, 6], data: new Float32Array(48) });
    writeFileSync(join(dir, 'adapter_model.safetensors'), serializeSafetensors(entries));
    expect(() => loadHfPeftAdapter(dir, dst.peft, registry)).toThrow(`unexpected tensor '${HF_PEFT_PREFIX}${FC1}.weight' (not a tensor of method 'gain', a bias or a module in modules_to_save)`);
    expect(Array.from(dst.toy.model.getModule(FC1).param('gain').variable.dataSync())).toEqual(Array.from(before));
    src.toy.dispose();
    dst.toy.dispose();
  });

  it('modules_to_save decides whether the decoder trains; anything but the decoder is refused', async () => {
    const src = build('gain', {}, false);
    const dir = join(tmp, 'saved');
    await exportHfPeft(dir, src.peft, registry);
    expect(readHfPeftConfig(dir).modules_to_save).toBeNull();
    expect(adapterMethod(dir, host(src.toy), registry).trainDecoder).toBe(false);
    rewrite(dir, { modules_to_save: ['decoder'] }); // PEFT wraps every module whose name ends with it: mask_decoder
    expect(adapterMethod(dir, host(src.toy), registry).trainDecoder).toBe(true);
    rewrite(dir, { modules_to_save: ['mask_decoder', 'image_encoder.neck'] });
    expect(() => adapterMethod(dir, host(src.toy), registry)).toThrow(/'modules_to_save' names 'image_encoder\.neck', but besides the method peftjs trains only the mask decoder \('mask_decoder'\)$/);
    // the peftjs format: whether its saved tensors include the decoder
    const frozen = join(tmp, 'peftjs-frozen');
    await saveAdapter(frozen, src.peft);
    expect(adapterMethod(frozen, host(src.toy), registry)).toEqual({ format: 'peftjs', id: 'gain', config: { targets: ['mlp.fc1'], bias: false, unfreeze: false }, trainDecoder: false });
    expect(detectAdapterFormat(frozen)).toBe('peftjs');
    src.toy.dispose();
  });

  it('refuses .bin adapters and a missing target_modules by name', async () => {
    const toy = new EncoderToy({ depth: 1, dim: 6, hidden: 8, seed: 3 });
    const dir = join(tmp, 'bin');
    mkdirSync(dir);
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ peft_type: 'GAIN' }));
    writeFileSync(join(dir, 'adapter_model.bin'), 'pickle');
    expect(() => adapterMethod(dir, host(toy), registry)).toThrow(/adapter_model\.safetensors: not found \(adapter_model\.bin files are pickled and not read/);
    writeFileSync(join(dir, 'adapter_model.safetensors'), serializeSafetensors(new Map()));
    expect(() => adapterMethod(dir, host(toy), registry)).toThrow(/'target_modules' is missing/);
    toy.dispose();
  });
});

describe("PEFT's module selection (check_target_module_exists)", () => {
  const paths = ['image_encoder.blocks.0.attn.qkv', 'image_encoder.blocks.0.mlp.fc1', 'image_encoder.blocks.1.attn.qkv', 'image_encoder.blocks.1.mlp.fc1', 'image_encoder.blocks.12.attn.qkv', 'blocks.0.attn.qkv', 'mask_decoder.qkv'];
  const sel = (config: Record<string, unknown>) => peftSelectedModules(config, paths);

  it('target_modules: an exact name, a suffix after a dot, or a full-match regex', () => {
    expect(sel({ target_modules: ['qkv'] })).toEqual(paths.filter((p) => p.endsWith('.qkv')));
    expect(sel({ target_modules: ['attn.qkv', 'image_encoder.blocks.0.mlp.fc1'] })).toEqual([paths[0], paths[1], paths[2], paths[4], paths[5]]);
    expect(sel({ target_modules: ['kv'] })).toEqual([]); // a suffix after '.', not any suffix
    expect(sel({ target_modules: 'image_encoder\\.blocks\\.\\d\\.attn\\.qkv' })).toEqual([paths[0], paths[2]]);
    expect(sel({ target_modules: 'all-linear' })).toEqual(paths);
    expect(() => sel({ target_modules: '(' })).toThrow(/'target_modules': '\(' is not a pattern peftjs reads \(missing closing \)/);
  });

  it('exclude_modules and modules_to_save take modules out', () => {
    expect(sel({ target_modules: ['qkv'], exclude_modules: ['blocks.0.attn.qkv'] })).toEqual([paths[2], paths[4], paths[6]]);
    expect(sel({ target_modules: ['qkv'], exclude_modules: '.*blocks\\.1\\..*' })).toEqual([paths[0], paths[4], paths[5], paths[6]]);
    expect(sel({ target_modules: ['qkv'], modules_to_save: ['mask_decoder'] })).not.toContain('mask_decoder.qkv');
  });

  it('layers_to_transform keeps suffix matches in those layers: after layers_pattern, or PEFT\'s first numbered component', () => {
    expect(sel({ target_modules: ['qkv'], layers_to_transform: [1, 12] })).toEqual([paths[2], paths[4]]);
    expect(sel({ target_modules: ['qkv'], layers_to_transform: 0, layers_pattern: 'blocks' })).toEqual([paths[0]]);
    expect(sel({ target_modules: ['qkv'], layers_to_transform: 0, layers_pattern: ['layers', 'blocks'] })).toEqual([paths[0]]);
    // PEFT's rule needs a component before the layer list: a root-level `blocks.0.` has no index, so it is not selected
    expect(sel({ target_modules: ['qkv'], layers_to_transform: [0] })).toEqual([paths[0]]);
    // an exact name is selected whatever the layer filter (as in PEFT)
    expect(sel({ target_modules: ['qkv', 'image_encoder.blocks.1.mlp.fc1'], layers_to_transform: [0] })).toEqual([paths[0], paths[3]]);
    expect(sel({ target_modules: ['qkv'], layers_to_transform: [] })).toEqual(paths.filter((p) => p.endsWith('.qkv')));
    expect(() => sel({ target_modules: ['qkv'], layers_pattern: 'blocks' })).toThrow(/'layers_pattern' needs 'layers_to_transform'/);
    expect(() => sel({ target_modules: ['qkv'], layers_to_transform: ['1'] })).toThrow(/'layers_to_transform' must be a layer index or a list of them/);
  });

  it('rank/alpha pattern keys: what peftjs writes, and PEFT\'s lookup', () => {
    expect(patternKey('image_encoder.blocks.0.attn.qkv')).toBe('blocks\\.0\\.attn\\.qkv');
    expect(patternValue({ 'blocks\\.0\\.attn\\.qkv': 4 }, 'image_encoder.blocks.0.attn.qkv')).toBe(4);
    expect(patternValue({ 'blocks\\.0\\.attn\\.qkv': 4 }, 'image_encoder.blocks.10.attn.qkv')).toBeUndefined();
    expect(patternValue({ qkv: 2, fc1: 3 }, 'image_encoder.blocks.3.mlp.fc1')).toBe(3);
    expect(patternValue({ '^image_encoder.blocks.0.attn.qkv': 5 }, 'image_encoder.blocks.0.attn.qkv')).toBe(5);
    expect(patternValue(null, 'x')).toBeUndefined();
  });

  it('siteTargets writes roles, role groups and exact-path regexes', () => {
    const toy = new EncoderToy({ depth: 2, dim: 6, hidden: 8, seed: 3 });
    const sites = toy.sites();
    const lin = (path: string) => sites.find((s): s is LinearSite => s.path === path && s.kind === 'linear')!;
    const qkv = [lin('image_encoder.blocks.0.attn.qkv'), lin('image_encoder.blocks.1.attn.qkv')];
    expect(siteTargets(qkv.map((site) => ({ site, groups: [false, true, true] })), sites, 'x')).toEqual(['attn.qkv[k,v]']);
    expect(siteTargets(qkv.map((site) => ({ site, groups: [true, true, true] })), sites, 'x')).toEqual(['attn.qkv']);
    expect(siteTargets([{ site: qkv[0]! }, { site: lin(FC1) }], sites, 'x')).toEqual(['/^(image_encoder\\.blocks\\.0\\.attn\\.qkv)$/', '/^(image_encoder\\.blocks\\.0\\.mlp\\.fc1)$/']);
    expect(() => siteTargets([{ site: qkv[0]!, groups: [true, false, false] }], sites, 'where')).toThrow(new PeftError("where: output groups on only some 'attn.qkv' layers ('image_encoder.blocks.0.attn.qkv') cannot be written as peftjs targets"));
    toy.dispose();
  });
});
