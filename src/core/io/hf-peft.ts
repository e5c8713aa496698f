// Hugging Face PEFT adapter files for LoRA and AdaLoRA, written so that
// `PeftModel.from_pretrained(sam, dir)` loads them, and read back:
//   adapter_config.json        peft_type LORA | ADALORA, r, lora_alpha,
//                              target_modules (the adapted module paths), ...
//   adapter_model.safetensors  base_model.model.<path>.lora_A.weight [r, in]
//                              base_model.model.<path>.lora_B.weight [out, r]
//                              (AdaLoRA: <path>.lora_A [r, in], .lora_E [r, 1],
//                              .lora_B [out, r]; ranknum is not saved: PEFT
//                              rebuilds it as init_r), trained biases as
//                              <path>.base_layer.bias (adapted layers) or
//                              <name> (others), and the trained mask decoder
//                              under base_model.model.mask_decoder.* with
//                              modules_to_save: ["mask_decoder"].
// Grouped LoRA (q and v of a fused qkv: lora_A [r*k, in], lora_B [(out/G)*k, r])
// has no PEFT form; it is written as a plain LoRA of rank r*k on qkv whose
// lora_B [out, r*k] is block-structured (group g's rows hold the j-th enabled
// group's block in columns j*r..j*r+r, zeros elsewhere), with rank_pattern
// r*k and alpha_pattern alpha*k (alpha*sqrt(k) with rsLoRA) for that module,
// so B A * scaling is exactly the grouped update.
//
// Layers are recognised by their tensors, not their classes (core does not
// import plugins): lora_A + lora_B (+ `enabled` groups) is LoRA, with lora_E
// it is AdaLoRA.
import * as tf from '@tensorflow/tfjs';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PeftError } from '../errors.js';
import type { Module } from '../nn/module.js';
import type { Parameter } from '../nn/parameter.js';
import type { InjectionSite, LinearSite } from '../peft/injection-site.js';
import type { LayerInjector } from '../peft/layer-injector.js';
import { ADAPTER_CONFIG_FILE, ADAPTER_FORMAT, ADAPTER_WEIGHTS_FILE, loadAdapter, readAdapterConfig, type AdapterTarget } from './adapter-files.js';
import { writeFileAtomic } from './atomic.js';
import { readSafetensors, serializeSafetensors, toFloat32, type RawTensor, type TensorToWrite } from './safetensors.js';

/** PEFT's prefix of every saved key (PeftModel.base_model.model). */
export const HF_PEFT_PREFIX = 'base_model.model.';

export type HfPeftType = 'LORA' | 'ADALORA';

/** The keys peftjs writes and reads (PEFT's LoraConfig / AdaLoraConfig fields). */
export interface HfPeftConfig {
  peft_type: HfPeftType;
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  target_modules: string[] | string;
  bias: 'none' | 'all' | 'lora_only';
  fan_in_fan_out: boolean;
  use_rslora?: boolean;
  modules_to_save: string[] | null;
  rank_pattern?: Record<string, unknown> | null;
  alpha_pattern?: Record<string, number>;
  task_type: null;
  base_model_name_or_path: string | null;
  inference_mode: boolean;
  init_r?: number;
  target_r?: number;
  tinit?: number;
  tfinal?: number;
  deltaT?: number;
  beta1?: number;
  beta2?: number;
  orth_reg_weight?: number;
  total_step?: number;
  [key: string]: unknown;
}

/** What is exported: a PeftModel (from `compose`) satisfies this. */
export interface HfPeftSource {
  readonly model: Module;
  readonly method: LayerInjector;
  readonly methodKeys: string[];
  readonly backbone?: { readonly id: string; readonly preset: string; readonly decoderPath?: string };
}

export interface HfPeftExportOptions {
  /** `base_model_name_or_path` (e.g. the official checkpoint the run started from). */
  baseModel?: string | null;
}

/** The LoRA-family layers of a model, recognised by their tensors. */
export interface LowRankLayer {
  path: string;
  module: Module;
  kind: 'lora' | 'grouped' | 'svd';
  /** LoRA: the rank of one group's update; AdaLoRA: the current number of triplets. */
  r: number;
  /** LoRA's alpha / r (or alpha / sqrt r). */
  scaling?: number;
  /** Grouped LoRA: which output groups are adapted. */
  enabled?: boolean[];
  groupWidth?: number;
}

export function lowRankLayers(model: Module): LowRankLayer[] {
  const out: LowRankLayer[] = [];
  for (const [path, m] of model.namedModules()) {
    if (!m.hasParam('lora_A') || !m.hasParam('lora_B')) continue;
    const a = m.param('lora_A').shape;
    if (m.hasParam('lora_E')) {
      out.push({ path, module: m, kind: 'svd', r: m.param('lora_E').shape[0]! });
      continue;
    }
    const info = m as unknown as { r?: number; scaling?: number; enabled?: unknown; groupWidth?: number; fanInFanOut?: boolean };
    if (info.fanInFanOut) throw new PeftError(`'${path}': fan_in_fan_out LoRA layers cannot be exported`);
    if (typeof info.scaling !== 'number') throw new PeftError(`'${path}': a LoRA layer without a numeric 'scaling'`);
    if (Array.isArray(info.enabled)) {
      out.push({ path, module: m, kind: 'grouped', r: info.r ?? a[0]! / info.enabled.filter(Boolean).length, scaling: info.scaling, enabled: info.enabled as boolean[], groupWidth: info.groupWidth });
    } else {
      out.push({ path, module: m, kind: 'lora', r: info.r ?? a[0]!, scaling: info.scaling });
    }
  }
  return out;
}

function hfTypeOf(methodId: string): HfPeftType {
  if (methodId === 'lora') return 'LORA';
  if (methodId === 'adalora') return 'ADALORA';
  throw new PeftError(`method '${methodId}' has no Hugging Face PEFT form (only lora and adalora do); export it with --format peftjs`);
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * The rank_pattern / alpha_pattern key of a module path: the path without its
 * first component, regex-escaped, which both PEFT's older (`.*\.{key}$`) and
 * newer (`(.*\.)?{key}$`) matching apply to the full module name.
 */
export function patternKey(path: string): string {
  const cut = path.indexOf('.');
  return esc(cut < 0 ? path : path.slice(cut + 1));
}

async function f32(t: tf.Tensor): Promise<Float32Array> {
  return (await t.data()) as Float32Array;
}

/** Grouped LoRA's B `[(out/G)*k, r]` as a plain LoRA B `[out, r*k]`, block by block. */
export function groupedToFullB(b: Float32Array, enabled: boolean[], groupWidth: number, r: number): Float32Array {
  const k = enabled.filter(Boolean).length;
  const out = new Float32Array(enabled.length * groupWidth * r * k);
  let j = 0;
  enabled.forEach((on, g) => {
    if (!on) return;
    for (let row = 0; row < groupWidth; row++) {
      for (let c = 0; c < r; c++) out[(g * groupWidth + row) * r * k + j * r + c] = b[(j * groupWidth + row) * r + c]!;
    }
    j++;
  });
  return out;
}

/** The inverse of `groupedToFullB`; a PeftError when `full` is not block-structured that way. */
export function fullToGroupedB(full: Float32Array, enabled: boolean[], groupWidth: number, r: number, what: string): Float32Array {
  const k = enabled.filter(Boolean).length;
  const out = new Float32Array(groupWidth * k * r);
  const slot = (() => {
    let j = 0;
    return enabled.map((on) => (on ? j++ : -1));
  })();
  for (let g = 0; g < enabled.length; g++) {
    for (let row = 0; row < groupWidth; row++) {
      for (let col = 0; col < r * k; col++) {
        const v = full[(g * groupWidth + row) * r * k + col]!;
        const inBlock = slot[g]! >= 0 && Math.floor(col / r) === slot[g];
        if (inBlock) out[(slot[g]! * groupWidth + row) * r + (col % r)] = v;
        else if (v !== 0) {
          throw new PeftError(`${what}: lora_B is not block-structured for groups [${enabled.map((e) => (e ? 1 : 0))}] (non-zero at row ${g * groupWidth + row}, column ${col}); load it into a model that adapts the whole layer`);
        }
      }
    }
  }
  return out;
}

/** HF PEFT's config for the exported adapter (LoRA or AdaLoRA). */
function hfConfig(source: HfPeftSource, type: HfPeftType, layers: LowRankLayer[], extra: Partial<HfPeftConfig>, options: HfPeftExportOptions): HfPeftConfig {
  const c = source.method.config as Record<string, unknown>;
  const common = {
    peft_type: type,
    task_type: null,
    base_model_name_or_path: options.baseModel ?? null,
    inference_mode: true,
    target_modules: layers.map((l) => l.path),
    fan_in_fan_out: false,
    lora_dropout: Number(c.dropout ?? 0),
    layers_to_transform: null,
    layers_pattern: null,
    init_lora_weights: true,
    use_dora: false,
    revision: null,
  };
  if (type === 'LORA') {
    return {
      ...common,
      r: Number(c.r),
      lora_alpha: Number(c.alpha),
      use_rslora: Boolean(c.rslora),
      bias: (c.bias as HfPeftConfig['bias']) ?? 'none',
      modules_to_save: null,
      rank_pattern: {},
      alpha_pattern: {},
      ...extra,
    } as HfPeftConfig;
  }
  const initR = Number(c.init_r);
  const alpha = Number(c.alpha);
  return {
    ...common,
    r: 8, // PEFT warns when AdaLoRA's unused `r` is not its default
    // PEFT rebuilds pruned layers with scaling lora_alpha, or their kept rank when lora_alpha is 0; peftjs's alpha 0 means init_r
    lora_alpha: alpha > 0 ? alpha : initR,
    use_rslora: false,
    bias: 'none',
    modules_to_save: null,
    init_r: initR,
    target_r: Number(c.target_r),
    tinit: Number(c.init_warmup),
    tfinal: Number(c.final_warmup),
    deltaT: Number(c.mask_interval),
    beta1: Number(c.beta1),
    beta2: Number(c.beta2),
    orth_reg_weight: Number(c.orth_reg_weight),
    total_step: Number(c.total_step),
    rank_pattern: null,
    ...extra,
  } as HfPeftConfig;
}

export interface HfPeftExportResult {
  configPath: string;
  weightsPath: string;
  config: HfPeftConfig;
  tensors: string[];
}

/** Writes `adapter_config.json` + `adapter_model.safetensors` in Hugging Face PEFT's format into `dir`. */
export async function exportHfPeft(dir: string, source: HfPeftSource, options: HfPeftExportOptions = {}): Promise<HfPeftExportResult> {
  const type = hfTypeOf(source.method.id);
  const model = source.model;
  const layers = lowRankLayers(model);
  if (layers.length === 0) throw new PeftError(`the model has no ${source.method.id} layers to export`);
  const entries = new Map<string, TensorToWrite>();
  const put = async (key: string, t: tf.Tensor | Float32Array, shape?: number[]) => {
    const data = t instanceof Float32Array ? t : await f32(t);
    entries.set(`${HF_PEFT_PREFIX}${key}`, { dtype: 'F32', shape: shape ?? (t as tf.Tensor).shape, data });
  };
  const extra: Partial<HfPeftConfig> = {};
  const covered = new Set<string>(source.methodKeys);
  if (type === 'LORA') {
    const c = source.method.config as { r: number; alpha: number; rslora?: boolean };
    const rankPattern: Record<string, number> = {};
    const alphaPattern: Record<string, number> = {};
    for (const l of layers) {
      if (l.kind === 'svd') throw new PeftError(`'${l.path}' is an AdaLoRA layer in a lora model`);
      const a = l.module.param('lora_A').variable;
      const b = l.module.param('lora_B').variable;
      await put(`${l.path}.lora_A.weight`, a);
      if (l.kind === 'lora') {
        if (l.r !== c.r) throw new PeftError(`'${l.path}': rank ${l.r} differs from the config's r ${c.r}`);
        await put(`${l.path}.lora_B.weight`, b);
        continue;
      }
      const k = l.enabled!.filter(Boolean).length;
      const out = l.enabled!.length * l.groupWidth!;
      await put(`${l.path}.lora_B.weight`, groupedToFullB(await f32(b), l.enabled!, l.groupWidth!, l.r), [out, l.r * k]);
      if (k !== 1) {
        rankPattern[patternKey(l.path)] = l.r * k;
        alphaPattern[patternKey(l.path)] = c.rslora ? c.alpha * Math.sqrt(k) : c.alpha * k;
      }
    }
    extra.rank_pattern = rankPattern;
    extra.alpha_pattern = alphaPattern;
  } else {
    for (const l of layers) if (l.kind !== 'svd') throw new PeftError(`'${l.path}' is a LoRA layer in an adalora model`);
    // the method prunes A, E, B to its rank pattern (as in its own adapter files)
    const live = new Map<string, tf.Tensor>();
    for (const l of layers) for (const n of ['lora_A', 'lora_E', 'lora_B']) live.set(`${l.path}.${n}`, l.module.param(n).variable);
    const exporter = source.method as LayerInjector & { exportAdapterTensors?(m: Module, t: Map<string, tf.Tensor>): Map<string, tf.Tensor> };
    const pruned = exporter.exportAdapterTensors ? exporter.exportAdapterTensors(model, live) : live;
    try {
      for (const [key, t] of pruned) await put(key, t);
    } finally {
      for (const [k, t] of pruned) if (live.get(k) !== t) t.dispose();
    }
    const state = source.method.adapterState?.(model) ?? {};
    const rp = state.rank_pattern as Record<string, boolean[]> | null | undefined;
    extra.rank_pattern = rp ? Object.fromEntries(Object.entries(rp).map(([path, keep]) => [`${path}.lora_E`, keep])) : null;
  }
  // other trainable tensors: biases (LoRA's bias modes) and the trained mask decoder (modules_to_save)
  const decoder = source.backbone?.decoderPath ?? 'mask_decoder';
  const tensors = new Map(model.namedTensors());
  const decoderKeys = [...tensors.keys()].filter((k) => k.startsWith(`${decoder}.`));
  const decoderTrained = decoderKeys.some((k) => tensors.get(k)!.trainable);
  if (decoderTrained) {
    extra.modules_to_save = [decoder];
    for (const k of decoderKeys) {
      await put(k, tensors.get(k)!.variable);
      covered.add(k);
    }
  }
  const adaptedPaths = new Set(layers.map((l) => l.path));
  for (const [name, p] of tensors) {
    if (!p.trainable || covered.has(name)) continue;
    if (!name.endsWith('.bias')) throw new PeftError(`trainable tensor '${name}' has no place in a Hugging Face PEFT adapter; export with --format peftjs`);
    const owner = name.slice(0, -'.bias'.length);
    await put(adaptedPaths.has(owner) ? `${owner}.base_layer.bias` : name, p.variable);
  }
  const config = hfConfig(source, type, layers, extra, options);
  const bytes = serializeSafetensors(entries, { format: 'pt' });
  const weightsPath = join(dir, ADAPTER_WEIGHTS_FILE);
  const configPath = join(dir, ADAPTER_CONFIG_FILE);
  writeFileAtomic(weightsPath, bytes);
  writeFileAtomic(configPath, `${JSON.stringify(config, null, 2)}\n`);
  return { configPath, weightsPath, config, tensors: [...entries.keys()].sort() };
}

/** Reads `dir/adapter_config.json` as a Hugging Face PEFT config (LoRA or AdaLoRA). */
export function readHfPeftConfig(dir: string): HfPeftConfig {
  const path = join(dir, ADAPTER_CONFIG_FILE);
  if (!existsSync(path)) throw new PeftError(`${path}: no adapter here (file not found)`);
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new PeftError(`${path}: not valid JSON (${(err as Error).message.split('\n')[0]})`);
  }
  if (typeof j !== 'object' || j === null) throw new PeftError(`${path}: must be a JSON object`);
  if (j.peft_type !== 'LORA' && j.peft_type !== 'ADALORA') {
    throw new PeftError(`${path}: 'peft_type' ${JSON.stringify(j.peft_type)} is not supported (LORA or ADALORA)`);
  }
  const num = (key: string, fallback?: number): number => {
    const v = j[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new PeftError(`${path}: '${key}' must be a number`);
    return v;
  };
  if (j.use_dora) throw new PeftError(`${path}: DoRA adapters (use_dora) are not supported`);
  if (j.fan_in_fan_out) throw new PeftError(`${path}: fan_in_fan_out adapters are not supported (SAM's linears are nn.Linear)`);
  const bias = j.bias ?? 'none';
  if (bias !== 'none' && bias !== 'all' && bias !== 'lora_only') throw new PeftError(`${path}: 'bias' must be none, all or lora_only`);
  return {
    ...j,
    peft_type: j.peft_type,
    r: num('r', 8),
    lora_alpha: num('lora_alpha', 8),
    lora_dropout: num('lora_dropout', 0),
    target_modules: (j.target_modules as string[] | string) ?? [],
    bias,
    fan_in_fan_out: false,
    use_rslora: Boolean(j.use_rslora),
    modules_to_save: Array.isArray(j.modules_to_save) ? (j.modules_to_save as string[]) : null,
    rank_pattern: (j.rank_pattern as Record<string, unknown> | null | undefined) ?? null,
    alpha_pattern: (j.alpha_pattern as Record<string, number> | undefined) ?? {},
    task_type: null,
    base_model_name_or_path: typeof j.base_model_name_or_path === 'string' ? j.base_model_name_or_path : null,
    inference_mode: j.inference_mode !== false,
  } as HfPeftConfig;
}

/** PEFT's pattern lookup: the first key `k` with `(.*\.)?k$` matching the module path. */
function patternValue<T>(pattern: Record<string, T> | null | undefined, path: string): T | undefined {
  for (const [key, v] of Object.entries(pattern ?? {})) {
    let re: RegExp;
    try {
      re = new RegExp(`^(.*\\.)?(${key})$`);
    } catch {
      continue;
    }
    if (re.test(path)) return v;
  }
  return undefined;
}

/** The adapter's tensors by module-relative key (PEFT's prefix and adapter name removed). */
function hfTensors(dir: string): Map<string, RawTensor> {
  const weightsPath = join(dir, ADAPTER_WEIGHTS_FILE);
  if (!existsSync(weightsPath)) throw new PeftError(`${weightsPath}: not found (adapter_model.bin files are not read; convert them to safetensors)`);
  const file = readSafetensors(weightsPath);
  const out = new Map<string, RawTensor>();
  for (const [key, raw] of file.tensors) {
    let k = key.startsWith(HF_PEFT_PREFIX) ? key.slice(HF_PEFT_PREFIX.length) : key;
    k = k.replace(/\.(lora_[ABE])\.default(\.weight)?$/, '.$1$2').replace(/\.modules_to_save\.default\./, '.');
    out.set(k, raw);
  }
  return out;
}

export interface HfPeftLoadResult {
  config: HfPeftConfig;
  loaded: string[];
}

/**
 * Loads a Hugging Face PEFT adapter into `target`: a model with the matching
 * peftjs method injected (lora for LORA, adalora for ADALORA) at the same
 * modules. Grouped LoRA layers take a block-structured B; a different
 * scaling (alpha, rank or rsLoRA) is folded into B. Every tensor is checked
 * before any is assigned; a key the model cannot take is an error.
 */
export function loadHfPeftAdapter(dir: string, target: AdapterTarget): HfPeftLoadResult {
  const cfg = readHfPeftConfig(dir);
  const weightsPath = join(dir, ADAPTER_WEIGHTS_FILE);
  const want = cfg.peft_type === 'LORA' ? 'lora' : 'adalora';
  if (target.method.id !== want) throw new PeftError(`${join(dir, ADAPTER_CONFIG_FILE)}: a ${cfg.peft_type} adapter needs method '${want}', the model has '${target.method.id}'`);
  const file = hfTensors(dir);
  const model = target.model;
  const assign: [Parameter, Float32Array, number[], string][] = [];
  const used = new Set<string>();
  const take = (key: string, what: string): RawTensor => {
    const raw = file.get(key);
    if (!raw) throw new PeftError(`${weightsPath}: missing tensor '${HF_PEFT_PREFIX}${key}' (${what})`);
    used.add(key);
    return raw;
  };
  const expectShape = (raw: RawTensor, shape: number[], key: string) => {
    if (raw.shape.join(',') !== shape.join(',')) throw new PeftError(`${weightsPath}: '${HF_PEFT_PREFIX}${key}' has shape [${raw.shape}] but the model expects [${shape}]`);
  };
  if (cfg.peft_type === 'ADALORA' && cfg.rank_pattern && target.method.loadAdapterState) {
    const pattern: Record<string, boolean[]> = {};
    for (const [key, keep] of Object.entries(cfg.rank_pattern)) {
      const path = key.replace(/\.default$/, '').replace(/\.lora_E$/, '').replace(new RegExp(`^${esc(HF_PEFT_PREFIX)}`), '');
      pattern[path] = keep as boolean[];
    }
    target.method.loadAdapterState(model, { rank_pattern: pattern });
  }
  const layers = lowRankLayers(model);
  for (const l of layers) {
    const m = l.module;
    if (l.kind === 'svd') {
      for (const n of ['lora_A', 'lora_E', 'lora_B']) {
        const raw = take(`${l.path}.${n}`, `AdaLoRA ${n} of '${l.path}'`);
        expectShape(raw, m.param(n).shape, `${l.path}.${n}`);
        assign.push([m.param(n), toFloat32(raw), raw.shape, n]);
      }
      const rn = file.get(`${l.path}.ranknum`);
      if (rn && m.hasParam('ranknum')) {
        used.add(`${l.path}.ranknum`);
        expectShape(rn, m.param('ranknum').shape, `${l.path}.ranknum`);
        assign.push([m.param('ranknum'), toFloat32(rn), rn.shape, 'ranknum']);
      }
      continue;
    }
    const rawA = take(`${l.path}.lora_A.weight`, `lora_A of '${l.path}'`);
    const rawB = take(`${l.path}.lora_B.weight`, `lora_B of '${l.path}'`);
    const rank = rawA.shape[0]!;
    const alpha = patternValue(cfg.alpha_pattern, l.path) ?? cfg.lora_alpha;
    const hfScaling = cfg.use_rslora ? alpha / Math.sqrt(rank) : alpha / rank;
    const ratio = hfScaling / l.scaling!;
    const aShape = m.param('lora_A').shape;
    const bShape = m.param('lora_B').shape;
    expectShape(rawA, aShape, `${l.path}.lora_A.weight`);
    let b = toFloat32(rawB);
    if (l.kind === 'grouped') {
      const out = l.enabled!.length * l.groupWidth!;
      expectShape(rawB, [out, aShape[0]!], `${l.path}.lora_B.weight`);
      b = fullToGroupedB(b, l.enabled!, l.groupWidth!, l.r, `${weightsPath}: '${l.path}'`);
    } else {
      expectShape(rawB, bShape, `${l.path}.lora_B.weight`);
    }
    if (Math.abs(ratio - 1) > 1e-12) b = b.map((v) => v * ratio);
    assign.push([m.param('lora_A'), toFloat32(rawA), aShape, 'lora_A'], [m.param('lora_B'), b, bShape, 'lora_B']);
  }
  // biases, the decoder (modules_to_save) and anything else by name
  const own = new Map(model.namedTensors());
  for (const [key, raw] of file) {
    if (used.has(key)) continue;
    const name = key.replace(/\.base_layer\.bias$/, '.bias');
    const p = own.get(name);
    if (!p) throw new PeftError(`${weightsPath}: unexpected tensor '${HF_PEFT_PREFIX}${key}' (the model has no '${name}')`);
    expectShape(raw, p.shape, key);
    used.add(key);
    assign.push([p, toFloat32(raw), raw.shape, name]);
  }
  for (const [p, data, shape] of assign) {
    tf.tidy(() => p.assign(tf.tensor(data, shape, 'float32')));
  }
  return { config: cfg, loaded: [...used].sort() };
}

export type AdapterFormat = 'peftjs' | 'hf-peft';

/** Which format `dir` holds (by its adapter_config.json). */
export function detectAdapterFormat(dir: string): AdapterFormat {
  const path = join(dir, ADAPTER_CONFIG_FILE);
  if (!existsSync(path)) throw new PeftError(`${dir}: no adapter here (no ${ADAPTER_CONFIG_FILE})`);
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new PeftError(`${path}: not valid JSON (${(err as Error).message.split('\n')[0]})`);
  }
  if (j?.format === ADAPTER_FORMAT) return 'peftjs';
  if (typeof j?.peft_type === 'string') return 'hf-peft';
  throw new PeftError(`${path}: neither a peftjs adapter ('format': '${ADAPTER_FORMAT}') nor a Hugging Face PEFT one ('peft_type')`);
}

/** Loads a peftjs or a Hugging Face PEFT adapter into `target`, whichever `dir` holds. */
export function loadAnyAdapter(dir: string, target: AdapterTarget): { format: AdapterFormat; loaded: string[] } {
  const format = detectAdapterFormat(dir);
  if (format === 'peftjs') return { format, loaded: loadAdapter(dir, target).loaded };
  return { format, loaded: loadHfPeftAdapter(dir, target).loaded };
}

const HF_TO_PEFTJS_ADALORA: [string, string][] = [
  ['init_r', 'init_r'],
  ['target_r', 'target_r'],
  ['tinit', 'init_warmup'],
  ['tfinal', 'final_warmup'],
  ['deltaT', 'mask_interval'],
  ['total_step', 'total_step'],
  ['beta1', 'beta1'],
  ['beta2', 'beta2'],
  ['orth_reg_weight', 'orth_reg_weight'],
];

/** Which modules `cfg.target_modules` names among `paths` (PEFT's rule: exact, suffix after '.', or a full-match regex string). */
export function matchTargetModules(target: string[] | string, paths: string[]): string[] {
  if (typeof target === 'string') {
    const re = new RegExp(`^(?:${target})$`);
    return paths.filter((p) => re.test(p));
  }
  return paths.filter((p) => target.some((t) => p === t || p.endsWith(`.${t}`)));
}

/**
 * The peftjs method (id and config) that receives an adapter in `dir`, given
 * the backbone's injection sites: a peftjs adapter says it; a Hugging Face
 * one is translated (LoRA's r, alpha, dropout, rsLoRA, bias; AdaLoRA's ranks
 * and schedule; targets from target_modules, with grouped q/v detected from
 * a block-structured lora_B). Per-module ranks other than the grouped form
 * cannot be represented and are an error.
 */
export function adapterMethod(dir: string, sites: InjectionSite[]): { format: AdapterFormat; id: string; config: Record<string, unknown>; trainDecoder?: boolean } {
  const format = detectAdapterFormat(dir);
  if (format === 'peftjs') {
    const c = readAdapterConfig(dir);
    return { format, id: c.method, config: c.config };
  }
  const cfg = readHfPeftConfig(dir);
  const where = join(dir, ADAPTER_CONFIG_FILE);
  const linear = sites.filter((s): s is LinearSite => s.kind === 'linear');
  const file = hfTensors(dir);
  const adapted = matchTargetModules(cfg.target_modules, linear.map((s) => s.path));
  const fromFile = [...file.keys()].filter((k) => /\.lora_A(\.weight)?$/.test(k)).map((k) => k.replace(/\.lora_A(\.weight)?$/, ''));
  for (const p of fromFile) if (!linear.some((s) => s.path === p)) throw new PeftError(`${where}: the adapter adapts '${p}', which is not an injection site of this backbone`);
  const paths = adapted.length ? adapted : fromFile;
  if (paths.length === 0) throw new PeftError(`${where}: 'target_modules' names no injection site of this backbone`);
  const chosen = linear.filter((s) => paths.includes(s.path));
  // per site: undefined (whole layer) or the enabled groups
  const groupsOf = new Map<string, boolean[] | undefined>();
  for (const s of chosen) {
    if (cfg.peft_type !== 'LORA') {
      groupsOf.set(s.path, undefined);
      continue;
    }
    const a = file.get(`${s.path}.lora_A.weight`);
    const b = file.get(`${s.path}.lora_B.weight`);
    const rank = a?.shape[0] ?? cfg.r;
    if (rank === cfg.r || !s.groups || !b) {
      if (rank !== cfg.r) throw new PeftError(`${where}: '${s.path}' has rank ${rank} but r is ${cfg.r}; per-module ranks are not supported by peftjs's lora`);
      groupsOf.set(s.path, undefined);
      continue;
    }
    if (rank % cfg.r !== 0) throw new PeftError(`${where}: '${s.path}' has rank ${rank}, not a multiple of r ${cfg.r}`);
    const k = rank / cfg.r;
    const gw = s.out / s.groups.length;
    const full = toFloat32(b);
    // group g is enabled when its rows are non-zero; its block must then be the next one
    const enabled = s.groups.map((_, g) => full.subarray(g * gw * rank, (g + 1) * gw * rank).some((v) => v !== 0));
    if (enabled.filter(Boolean).length !== k) throw new PeftError(`${where}: cannot tell which ${k} output groups of '${s.path}' are adapted (lora_B has ${enabled.filter(Boolean).length} non-zero groups)`);
    fullToGroupedB(full, enabled, gw, cfg.r, `${where}: '${s.path}'`);
    groupsOf.set(s.path, enabled);
  }
  // targets: a role when every site of that role is adapted alike, else exact path regexes
  const targets: string[] = [];
  const byRole = new Map<string, LinearSite[]>();
  for (const s of chosen) byRole.set(s.role, [...(byRole.get(s.role) ?? []), s]);
  for (const [role, list] of byRole) {
    const all = linear.filter((s) => s.role === role);
    const first = JSON.stringify(groupsOf.get(list[0]!.path));
    const alike = list.every((s) => JSON.stringify(groupsOf.get(s.path)) === first);
    const groups = groupsOf.get(list[0]!.path);
    if (list.length === all.length && alike) {
      targets.push(groups ? `${role}[${list[0]!.groups!.filter((_, i) => groups[i]).join(',')}]` : role);
    } else if (list.every((s) => !groupsOf.get(s.path))) {
      targets.push(`/^(${list.map((s) => esc(s.path)).join('|')})$/`);
    } else {
      throw new PeftError(`${where}: grouped LoRA on only some '${role}' layers cannot be represented by peftjs targets`);
    }
  }
  const trainDecoder = (cfg.modules_to_save ?? []).length > 0;
  if (cfg.peft_type === 'LORA') {
    return { format, id: 'lora', trainDecoder, config: { r: cfg.r, alpha: cfg.lora_alpha, dropout: cfg.lora_dropout, rslora: Boolean(cfg.use_rslora), bias: cfg.bias, targets } };
  }
  const config: Record<string, unknown> = { alpha: cfg.lora_alpha, dropout: cfg.lora_dropout, targets };
  for (const [from, to] of HF_TO_PEFTJS_ADALORA) if (typeof cfg[from] === 'number') config[to] = cfg[from];
  return { format, id: 'adalora', trainDecoder, config };
}
