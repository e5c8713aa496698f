// Hugging Face PEFT adapter folders, for any method that declares a codec
// (`MethodDefinition.hfPeft`, see hf-peft-codec.ts): written so that
// `PeftModel.from_pretrained(model, dir)` loads them, and read back.
//   adapter_config.json        peft_type (the codec's), task_type null,
//                              base_model_name_or_path (a hub model id or
//                              null), inference_mode, target_modules,
//                              modules_to_save, and the codec's own keys;
//   adapter_model.safetensors  base_model.model.<module path>.<codec's name>,
//                              peftjs's provenance in its metadata,
//                              trained biases as <path>.base_layer.bias
//                              (adapted modules) or <name> (others), and a
//                              trained mask decoder under its own names with
//                              modules_to_save: [<decoder path>].
// Reading strips PEFT's prefix and adapter name (`lora_A.default.weight` →
// `lora_A.weight`), picks the codec by `peft_type`, selects modules by PEFT's
// own rules (target_modules, exclude_modules, layers_to_transform,
// layers_pattern), checks every tensor, and only then assigns any.
import * as tf from '@tensorflow/tfjs';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PeftError } from '../errors.js';
import { compileUntrustedPattern, escapePattern } from '../patterns.js';
import { briefValue, quoteName } from '../text.js';
import type { Module } from '../nn/module.js';
import type { Parameter } from '../nn/parameter.js';
import type { InjectionSite, LinearSite } from '../peft/injection-site.js';
import type { LayerInjector } from '../peft/layer-injector.js';
import { provenanceMetadata } from '../registry/provenance.js';
import { ADAPTER_CONFIG_FILE, ADAPTER_FORMAT, ADAPTER_WEIGHTS_FILE, firstNonFinite, loadAdapter, readAdapterConfig, type AdapterTarget } from './adapter-files.js';
import { writeFileAtomic } from './atomic.js';
import { readRegularTextFile } from './read-regular-file.js';
import type { HfPeftAdapter, HfPeftCodec, HfPeftMethod, HfPeftMethods } from './hf-peft-codec.js';
import { readSafetensors, serializeSafetensors, toFloat32, type RawTensor, type TensorToWrite } from './safetensors.js';

/** PEFT's prefix of every saved key (PeftModel.base_model.model). */
export const HF_PEFT_PREFIX = 'base_model.model.';

/** The adapter name PEFT gives an adapter that was not named (`lora_A.default.weight`). */
const ADAPTER_NAME = 'default';

/** Config keys core writes; a codec's part may not set them. */
const CORE_KEYS = ['peft_type', 'task_type', 'base_model_name_or_path', 'revision', 'inference_mode', 'modules_to_save'];

function methodList(methods: HfPeftMethods): readonly HfPeftMethod[] {
  return Array.isArray(methods) ? (methods as readonly HfPeftMethod[]) : (methods as { methods(): readonly HfPeftMethod[] }).methods();
}

/** `TYPE (method, …)` for every peft_type the loaded methods read, for messages. */
function knownTypes(methods: readonly HfPeftMethod[]): string {
  const by = new Map<string, string[]>();
  for (const m of methods) for (const t of m.hfPeft?.peftTypes ?? []) by.set(t, [...(by.get(t) ?? []), m.id]);
  return by.size ? [...by].map(([t, ids]) => `${t} (${ids.join(', ')})`).join(', ') : 'none';
}

const esc = escapePattern;

/**
 * Whether `value` can be written as `base_model_name_or_path`: a Hugging Face
 * model id (`name` or `org/name`), not a file name with a weights extension
 * and not a file or folder that exists here. PEFT resolves this field as a
 * local path first, so a local path would point readers at the exporter's disk.
 */
export function isHubModelId(value: string): boolean {
  if (value.length > 96 || !/^[A-Za-z0-9][\w.-]*(\/[A-Za-z0-9][\w.-]*)?$/.test(value)) return false;
  if (/\.\.|--|[.-]$/.test(value)) return false;
  if (/\.(pth?|bin|safetensors|ckpt|pkl|onnx|h5|zip|json)$/i.test(value)) return false;
  return !existsSync(value);
}

/**
 * The rank_pattern / alpha_pattern key of a module path: the path without its
 * first component, regex-escaped, which both PEFT's older (`.*\.{key}$`) and
 * newer (`(.*\.)?{key}$`) matching apply to the full module name.
 */
export function patternKey(path: string): string {
  const cut = path.indexOf('.');
  return esc(cut < 0 ? path : path.slice(cut + 1));
}

/**
 * PEFT's pattern lookup (`get_pattern_key`): the value of the first key `k`
 * for which `(.*\.)?k$` matches the module path, else the value under the
 * path itself, else undefined. Keys are read from files: they are compiled
 * by the linear-time engine (core/patterns.ts), and a malformed one is a
 * PeftError naming `where` (the file and the key, e.g. `<file>: 'alpha_pattern'`).
 */
export function patternValue<T>(pattern: Readonly<Record<string, T>> | null | undefined, path: string, where = 'pattern'): T | undefined {
  if (pattern === null || pattern === undefined) return undefined;
  if (typeof pattern !== 'object' || Array.isArray(pattern)) throw new PeftError(`${where}: must be an object of module-name patterns, got ${briefValue(pattern)}`);
  for (const [key, v] of Object.entries(pattern)) {
    if (compileUntrustedPattern(key, `${where} key`, { wrap: (k) => `^(.*\\.)?(${k})$` }).test(path)) return v;
  }
  return Object.prototype.hasOwnProperty.call(pattern, path) ? pattern[path] : undefined;
}

/** Python's `re.fullmatch(pattern, text)`, with the linear-time engine; a bad pattern is a PeftError naming `what`. */
function fullMatch(pattern: string, text: string, what: string): boolean {
  return compileUntrustedPattern(pattern, what).fullMatch(text);
}

function names(v: unknown, key: string, where: string): string[] | string | null {
  if (v === undefined || v === null) return null;
  if (typeof v === 'string') return v;
  if (Array.isArray(v) && v.every((s) => typeof s === 'string')) return v as string[];
  throw new PeftError(`${where}: '${key}' must be a list of module names or a regular expression`);
}

/**
 * The module paths PEFT adapts by `config`, among `paths` (its
 * `check_target_module_exists`): `exclude_modules` and `modules_to_save`
 * remove a module; `target_modules` selects by exact name, by '.'-suffix or by
 * a full-match regex ('all-linear': every path given); `layers_to_transform`
 * keeps suffix matches in those layers only, the layer index being the number
 * after `layers_pattern` (or, without it, after the second path component:
 * PEFT's `.*?\.[^.]*\.(\d+)\.`). Exact names ignore the layer filter, as in PEFT.
 */
export function peftSelectedModules(config: Readonly<Record<string, unknown>>, paths: readonly string[], where = 'adapter_config.json'): string[] {
  const target = names(config.target_modules, 'target_modules', where);
  if (target === null) throw new PeftError(`${where}: 'target_modules' is missing (peftjs does not guess PEFT's per-architecture defaults)`);
  const exclude = names(config.exclude_modules, 'exclude_modules', where);
  const toSave = names(config.modules_to_save, 'modules_to_save', where);
  const layers = config.layers_to_transform;
  const usingLayers = layers !== undefined && layers !== null && !(Array.isArray(layers) && layers.length === 0);
  if (usingLayers && !(Number.isInteger(layers) || (Array.isArray(layers) && layers.every(Number.isInteger)))) {
    throw new PeftError(`${where}: 'layers_to_transform' must be a layer index or a list of them`);
  }
  const patternRaw = names(config.layers_pattern, 'layers_pattern', where);
  const patterns = patternRaw === null ? [] : typeof patternRaw === 'string' ? (patternRaw ? [patternRaw] : []) : patternRaw;
  // PEFT's config validation refuses these two combinations
  if (typeof target === 'string' && (usingLayers || patterns.length)) {
    throw new PeftError(`${where}: 'layers_to_transform'/'layers_pattern' cannot be used when 'target_modules' is a regular expression (PEFT refuses this config too)`);
  }
  if (patterns.length && !usingLayers) throw new PeftError(`${where}: 'layers_pattern' needs 'layers_to_transform' (PEFT refuses this config too)`);
  const layerRes = patterns.length
    ? patterns.map((p) => compileUntrustedPattern(p, `${where}: 'layers_pattern'`, { wrap: (q) => `^.*?\\.${q}\\.(\\d+)\\.` }))
    : [compileUntrustedPattern('[^.]*', 'layers', { wrap: (q) => `^.*?\\.${q}\\.(\\d+)\\.` })];
  const savedRes = (toSave === null ? [] : typeof toSave === 'string' ? [toSave] : toSave).map((m) =>
    compileUntrustedPattern(m, `${where}: 'modules_to_save'`, { wrap: (q) => `^(.*\\.)?${q}($|\\.)` }),
  );
  const layerOf = (path: string): number | undefined => {
    for (const re of layerRes) {
      const m = re.exec(path);
      if (m) return Number(m[m.length - 1]);
    }
    return undefined;
  };
  return paths.filter((path) => {
    if (exclude !== null) {
      if (typeof exclude === 'string' ? fullMatch(exclude, path, `${where}: 'exclude_modules'`) : exclude.some((e) => path === e || path.endsWith(`.${e}`))) return false;
    }
    if (savedRes.some((re) => re.test(path))) return false;
    if (typeof target === 'string') return target === 'all-linear' || fullMatch(target, path, `${where}: 'target_modules'`);
    if (target.includes(path)) return true;
    if (!target.some((t) => path.endsWith(`.${t}`))) return false;
    if (!usingLayers) return true;
    const index = layerOf(path);
    if (index === undefined) return false;
    return Array.isArray(layers) ? layers.includes(index) : layers === index;
  });
}

/**
 * peftjs targets that select exactly `chosen` among `sites`: per role, the
 * role itself (with its groups, `attn.qkv[q,v]`) when every site of that role
 * is chosen alike, else an exact-path regex (`/^(blocks\.0\.mlp\.fc1)$/`).
 * Output groups on only some sites of a role have no target form: a PeftError.
 */
export function siteTargets(chosen: readonly { site: LinearSite; groups?: readonly boolean[] }[], sites: readonly InjectionSite[], owner: string): string[] {
  const targets: string[] = [];
  const byRole = new Map<string, { site: LinearSite; groups?: readonly boolean[] }[]>();
  for (const c of chosen) byRole.set(c.site.role, [...(byRole.get(c.site.role) ?? []), c]);
  const key = (g?: readonly boolean[]) => (g && !g.every(Boolean) ? g.map(Number).join('') : 'all');
  for (const [role, list] of byRole) {
    const all = sites.filter((s) => s.kind === 'linear' && s.role === role);
    const alike = list.every((c) => key(c.groups) === key(list[0]!.groups));
    const groups = list[0]!.groups;
    if (list.length === all.length && alike) {
      const partial = groups && !groups.every(Boolean);
      targets.push(partial ? `${role}[${list[0]!.site.groups!.filter((_, i) => groups[i]).join(',')}]` : role);
    } else if (list.every((c) => key(c.groups) === 'all')) {
      targets.push(`/^(${list.map((c) => esc(c.site.path)).join('|')})$/`);
    } else {
      const some = list.filter((c) => key(c.groups) !== 'all').map((c) => `'${c.site.path}'`);
      throw new PeftError(`${owner}: output groups on only some '${role}' layers (${some.slice(0, 3).join(', ')}${some.length > 3 ? ', …' : ''}) cannot be written as peftjs targets`);
    }
  }
  return targets;
}

/** A tf tensor or float32 data as a safetensors entry (float32). */
export async function hfTensor(t: tf.Tensor | Float32Array, shape?: readonly number[]): Promise<TensorToWrite> {
  if (t instanceof Float32Array) {
    if (!shape) throw new PeftError('hfTensor: float32 data needs a shape');
    return { dtype: 'F32', shape: [...shape], data: t };
  }
  const data = (await t.data()) as Float32Array;
  return { dtype: 'F32', shape: [...(shape ?? t.shape)], data: data instanceof Float32Array ? data : Float32Array.from(data) };
}

/** The codec of method `id`, or a PeftError naming the methods that have one. */
function codecOf(methods: readonly HfPeftMethod[], id: string): HfPeftCodec {
  const codec = methods.find((m) => m.id === id)?.hfPeft;
  if (codec) return codec;
  const able = methods.filter((m) => m.hfPeft).map((m) => m.id);
  throw new PeftError(`method '${id}' has no Hugging Face PEFT codec (${able.length ? `methods with one: ${able.join(', ')}` : 'no loaded method has one'}); export it with --format peftjs`);
}

/** What is exported: a PeftModel (from `compose`) satisfies this. */
export interface HfPeftSource {
  readonly model: Module;
  readonly method: LayerInjector;
  readonly methodKeys: readonly string[];
  readonly sites?: readonly InjectionSite[];
  /** `decoderPath`: the trainable mask decoder, written as modules_to_save when it trained. */
  readonly backbone?: { readonly id: string; readonly decoderPath?: string };
}

export interface HfPeftExportOptions {
  /** `base_model_name_or_path`: a Hugging Face model id, or null (the default). A local path is refused. */
  baseModel?: string | null;
}

export interface HfPeftExportResult {
  configPath: string;
  weightsPath: string;
  config: Record<string, unknown>;
  /** The keys written, sorted. */
  tensors: string[];
}

/** Writes `adapter_config.json` + `adapter_model.safetensors` in Hugging Face PEFT's format into `dir`, with the method's codec. */
export async function exportHfPeft(dir: string, source: HfPeftSource, methods: HfPeftMethods, options: HfPeftExportOptions = {}): Promise<HfPeftExportResult> {
  const id = source.method.id;
  const codec = codecOf(methodList(methods), id);
  const baseModel = options.baseModel ?? null;
  if (baseModel !== null && !isHubModelId(baseModel)) {
    throw new PeftError(`base model '${baseModel}' is not a Hugging Face model id (name or org/name): base_model_name_or_path is a model id or null, never a local file`);
  }
  const part = await codec.exportAdapter({ model: source.model, method: source.method, methodKeys: source.methodKeys, sites: source.sites }, source.method.config);
  for (const key of CORE_KEYS) if (key in part.config) throw new PeftError(`method '${id}': its Hugging Face PEFT codec sets '${key}', which core writes`);
  if (part.adaptedPaths.length === 0 || part.tensors.size === 0) throw new PeftError(`method '${id}': the model has no adapted module to export`);
  const entries = new Map<string, TensorToWrite>();
  const put = (key: string, entry: TensorToWrite) => {
    if (entries.has(`${HF_PEFT_PREFIX}${key}`)) throw new PeftError(`method '${id}': tensor '${HF_PEFT_PREFIX}${key}' is written twice`);
    entries.set(`${HF_PEFT_PREFIX}${key}`, entry);
  };
  for (const [key, entry] of part.tensors) put(key, entry);
  const covered = new Set<string>([...source.methodKeys, ...(part.covers ?? [])]);
  const tensors = new Map(source.model.namedTensors());
  // the trained mask decoder: modules_to_save, under its own names (where ModulesToSaveWrapper reads them)
  const decoder = source.backbone?.decoderPath;
  const decoderKeys = decoder ? [...tensors.keys()].filter((k) => k.startsWith(`${decoder}.`)) : [];
  const decoderTrained = decoderKeys.some((k) => tensors.get(k)!.trainable);
  if (decoderTrained) {
    for (const k of decoderKeys) {
      put(k, await hfTensor(tensors.get(k)!.variable));
      covered.add(k);
    }
  }
  // trained biases: on an adapted module PEFT keeps the original layer as `base_layer`
  const adapted = new Set(part.adaptedPaths);
  for (const [name, p] of tensors) {
    if (!p.trainable || covered.has(name)) continue;
    if (!name.endsWith('.bias')) throw new PeftError(`trainable tensor '${name}' has no place in a Hugging Face PEFT adapter (not the method's, not a bias, not the mask decoder); export with --format peftjs`);
    const owner = name.slice(0, -'.bias'.length);
    put(adapted.has(owner) ? `${owner}.base_layer.bias` : name, await hfTensor(p.variable));
  }
  const config: Record<string, unknown> = {
    peft_type: codec.peftTypes[0],
    task_type: null,
    base_model_name_or_path: baseModel,
    revision: null,
    inference_mode: true,
    target_modules: part.adaptedPaths,
    ...part.config,
    modules_to_save: decoderTrained ? [decoder] : null,
  };
  const weightsPath = join(dir, ADAPTER_WEIGHTS_FILE);
  const configPath = join(dir, ADAPTER_CONFIG_FILE);
  // which method, backbone and plugins: in the weights' metadata, since PEFT's config takes no keys of ours
  writeFileAtomic(weightsPath, serializeSafetensors(entries, { format: 'pt', ...provenanceMetadata(source) }));
  writeFileAtomic(configPath, `${JSON.stringify(config, null, 2)}\n`);
  return { configPath, weightsPath, config, tensors: [...entries.keys()].sort() };
}

function readJsonObject(path: string): Record<string, unknown> {
  if (!existsSync(path)) throw new PeftError(`${path}: no adapter here (file not found)`);
  const text = readRegularTextFile(path, 'json');
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (err) {
    throw new PeftError(`${path}: not valid JSON (${(err as Error).message.split('\n')[0]})`);
  }
  if (typeof j !== 'object' || j === null || Array.isArray(j)) throw new PeftError(`${path}: must be a JSON object`);
  return j as Record<string, unknown>;
}

/** Reads `dir/adapter_config.json` as a Hugging Face PEFT config: an object with a string `peft_type`. */
export function readHfPeftConfig(dir: string): Record<string, unknown> & { peft_type: string } {
  const path = join(dir, ADAPTER_CONFIG_FILE);
  const j = readJsonObject(path);
  if (typeof j.peft_type !== 'string' || !j.peft_type) throw new PeftError(`${path}: 'peft_type' must be a string (a Hugging Face PEFT adapter names its method there)`);
  return j as Record<string, unknown> & { peft_type: string };
}

/**
 * PEFT's checkpoint key from a key that may still hold the adapter name
 * (`x.lora_A.default.weight`, `x.lora_E.default`, `mask_decoder.modules_to_save.default.weight`):
 * the inverse of PEFT's `_remove_adapter_name_from_state_dict_key` for the adapter 'default'.
 */
function withoutAdapterName(key: string): string {
  let k = key.replace(`.modules_to_save.${ADAPTER_NAME}.`, '.');
  if (k.endsWith(`.${ADAPTER_NAME}`)) return k.slice(0, -ADAPTER_NAME.length - 1);
  const parts = k.split('.');
  if (parts.length >= 3 && parts[parts.length - 2] === ADAPTER_NAME) k = [...parts.slice(0, -2), parts[parts.length - 1]].join('.');
  return k;
}

/** The largest |lora_alpha| (and alpha_pattern value) read: PEFT's scaling alpha / r multiplies every update. */
export const MAX_HF_ALPHA = 1e6;
/** The largest rank `r` read (the size check bounds it further by the layers it adapts). */
export const MAX_HF_RANK = 65_536;

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The config keys PEFT's LoRA family shares, checked whatever the method: `r`
 * an integer from 1 to MAX_HF_RANK, `lora_alpha` finite with |alpha| <=
 * MAX_HF_ALPHA, `lora_dropout` in [0, 1), `rank_pattern` an object (its values
 * are the method's: numbers for LoRA, keep-masks for AdaLoRA), `alpha_pattern`
 * an object of numbers bounded as lora_alpha, `target_modules` a name or a
 * list of names. Absent or null keys are PEFT's defaults, left to the codec.
 */
function checkGenericKeys(config: Readonly<Record<string, unknown>>, where: string): void {
  const fail = (key: string, rule: string): never => {
    throw new PeftError(`${where}: '${key}' must be ${rule}, got ${briefValue(config[key])}`);
  };
  const given = (key: string) => config[key] !== undefined && config[key] !== null;
  const alphaOk = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && Math.abs(v) <= MAX_HF_ALPHA;
  if (given('r') && !(Number.isSafeInteger(config.r) && (config.r as number) >= 1 && (config.r as number) <= MAX_HF_RANK)) fail('r', `an integer from 1 to ${MAX_HF_RANK}`);
  if (given('lora_alpha') && !alphaOk(config.lora_alpha)) fail('lora_alpha', `a finite number with |lora_alpha| <= ${MAX_HF_ALPHA}`);
  if (given('lora_dropout') && !(typeof config.lora_dropout === 'number' && config.lora_dropout >= 0 && config.lora_dropout < 1)) fail('lora_dropout', 'a number in [0, 1)');
  if (given('rank_pattern') && !isPlainObject(config.rank_pattern)) fail('rank_pattern', 'an object of module-name patterns');
  if (given('alpha_pattern')) {
    if (!isPlainObject(config.alpha_pattern)) fail('alpha_pattern', 'an object of module-name patterns to numbers');
    for (const [key, v] of Object.entries(config.alpha_pattern as Record<string, unknown>)) {
      if (!alphaOk(v)) throw new PeftError(`${where}: 'alpha_pattern' ${quoteName(key)} must be a finite number with |alpha| <= ${MAX_HF_ALPHA}, got ${briefValue(v)}`);
    }
  }
  if (given('target_modules')) names(config.target_modules, 'target_modules', where);
}

/** A Hugging Face PEFT adapter folder, read and checked for what every method shares. */
class HfPeftAdapterFolder implements HfPeftAdapter {
  readonly configPath: string;
  readonly weightsPath: string;
  readonly config: Record<string, unknown>;
  readonly peftType: string;
  readonly tensors: Map<string, RawTensor>;
  readonly used = new Set<string>();
  private readonly staged: { param: Parameter; data: Float32Array; key: string }[] = [];

  constructor(readonly dir: string) {
    this.configPath = join(dir, ADAPTER_CONFIG_FILE);
    this.weightsPath = join(dir, ADAPTER_WEIGHTS_FILE);
    this.config = readHfPeftConfig(dir);
    this.peftType = this.config.peft_type as string;
    if (!existsSync(this.weightsPath)) {
      throw new PeftError(`${this.weightsPath}: not found (adapter_model.bin files are pickled and not read; save with safe_serialization=True, PEFT's default)`);
    }
    checkGenericKeys(this.config, this.configPath);
    this.tensors = new Map();
    for (const [key, raw] of readSafetensors(this.weightsPath).tensors) {
      const k = withoutAdapterName(key.startsWith(HF_PEFT_PREFIX) ? key.slice(HF_PEFT_PREFIX.length) : key);
      if (this.tensors.has(k)) throw new PeftError(`${this.weightsPath}: two tensors for '${HF_PEFT_PREFIX}${k}' (with and without the adapter name)`);
      this.tensors.set(k, raw);
    }
  }

  fail(message: string): never {
    throw new PeftError(`${this.configPath}: ${message}`);
  }

  number(key: string, fallback?: number): number {
    const v = this.config[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(`'${key}' must be a number`);
    return v;
  }

  boolean(key: string, fallback: boolean): boolean {
    const v = this.config[key] ?? fallback;
    if (typeof v !== 'boolean') this.fail(`'${key}' must be true or false`);
    return v;
  }

  modulesWith(suffix: string): string[] {
    const tail = `.${suffix}`;
    return [...this.tensors.keys()].filter((k) => k.endsWith(tail)).map((k) => k.slice(0, -tail.length));
  }

  tensor(key: string, what: string): RawTensor {
    const raw = this.tensors.get(key);
    if (!raw) throw new PeftError(`${this.weightsPath}: missing tensor '${HF_PEFT_PREFIX}${key}' (${what})`);
    return raw;
  }

  float32(key: string, shape: readonly number[], what: string): Float32Array {
    const raw = this.tensor(key, what);
    if (raw.shape.join(',') !== shape.join(',')) throw new PeftError(`${this.weightsPath}: '${HF_PEFT_PREFIX}${key}' has shape [${raw.shape}] but the model expects [${shape}]`);
    this.used.add(key);
    return toFloat32(raw);
  }

  stage(param: Parameter, data: Float32Array, key: string): void {
    if (data.length !== param.size) throw new PeftError(`${this.weightsPath}: '${HF_PEFT_PREFIX}${key}' has ${data.length} values for a parameter of shape [${param.shape}]`);
    // what is staged is what the model gets, after a codec's scaling (a huge lora_alpha overflows here)
    const bad = firstNonFinite(data);
    if (bad >= 0) throw new PeftError(`${this.weightsPath}: ${quoteName(`${HF_PEFT_PREFIX}${key}`)} holds a non-finite value (${data[bad]} at index ${bad}) once loaded${this.config.lora_alpha !== undefined ? `; lora_alpha is ${briefValue(this.config.lora_alpha)}` : ''}`);
    this.used.add(key);
    this.staged.push({ param, data, key });
  }

  /** The module names listed in modules_to_save. */
  modulesToSave(): string[] {
    const v = names(this.config.modules_to_save, 'modules_to_save', this.configPath);
    return v === null ? [] : typeof v === 'string' ? [v] : v;
  }

  /** Assigns every staged tensor (after everything was checked). */
  commit(): string[] {
    for (const { param, data } of this.staged) tf.tidy(() => param.assign(tf.tensor(data, param.shape, 'float32')));
    return this.staged.map((s) => s.key);
  }
}

/** The one codec that reads `adapter`: by peft_type, then by `declines`. */
function readerOf(adapter: HfPeftAdapterFolder, methods: readonly HfPeftMethod[]): { id: string; codec: HfPeftCodec } {
  const typed = methods.filter((m) => m.hfPeft?.peftTypes.includes(adapter.peftType));
  if (typed.length === 0) {
    adapter.fail(`peft_type '${adapter.peftType}' is read by no loaded method (types read here: ${knownTypes(methods)}); load the plugin that provides it`);
  }
  const reasons = typed.map((m) => ({ id: m.id, why: m.hfPeft!.declines?.(adapter.config) }));
  const willing = reasons.filter((r) => r.why === undefined);
  if (willing.length === 0) adapter.fail(reasons.map((r) => `method '${r.id}' does not read it: ${r.why}`).join('; '));
  if (willing.length > 1) {
    adapter.fail(`methods ${willing.map((r) => `'${r.id}'`).join(' and ')} all read peft_type '${adapter.peftType}' with this config; one of them should decline it (HfPeftCodec.declines)`);
  }
  const id = willing[0]!.id;
  return { id, codec: typed.find((m) => m.id === id)!.hfPeft! };
}

export interface HfPeftLoadResult {
  config: Record<string, unknown>;
  /** The keys that were assigned (module-relative). */
  loaded: string[];
}

/**
 * Loads a Hugging Face PEFT adapter into `target`: a model with the method
 * whose codec reads this peft_type already injected at the same modules (see
 * `adapterMethod`). The codec stages its tensors; biases
 * (`<path>.base_layer.bias`, `<path>.bias`) and modules_to_save tensors load
 * by name; any other key is an error. Nothing is assigned unless everything fits.
 */
export function loadHfPeftAdapter(dir: string, target: AdapterTarget, methods: HfPeftMethods): HfPeftLoadResult {
  const adapter = new HfPeftAdapterFolder(dir);
  const list = methodList(methods);
  const { id, codec } = readerOf(adapter, list);
  if (id !== target.method.id) adapter.fail(`a ${adapter.peftType} adapter needs method '${id}', the model has '${target.method.id}'`);
  // PEFT's own module selection decides which modules the adapter is for: never whatever the weights file holds
  const selected = peftSelectedModules(adapter.config, [...target.model.namedModules()].map(([path]) => path).filter(Boolean), adapter.configPath);
  if (selected.length === 0) adapter.fail(`'target_modules' ${briefValue(adapter.config.target_modules)} matches no module of the model`);
  codec.loadAdapter(adapter, { model: target.model, method: target.method });
  for (const key of adapter.used) {
    if (!selected.some((path) => key.startsWith(`${path}.`))) adapter.fail(`${quoteName(`${HF_PEFT_PREFIX}${key}`)} belongs to a module that 'target_modules' ${briefValue(adapter.config.target_modules)} does not select`);
  }
  const own = new Map(target.model.namedTensors());
  const saved = adapter.modulesToSave();
  for (const [key, raw] of adapter.tensors) {
    if (adapter.used.has(key)) continue;
    const name = key.endsWith('.base_layer.bias') ? `${key.slice(0, -'.base_layer.bias'.length)}.bias` : key;
    // under a module PEFT wraps as modules_to_save: one whose name ends with an entry
    const parts = name.split('.');
    const underSaved = parts.some((_, i) => i > 0 && saved.some((m) => parts.slice(0, i).join('.').endsWith(m)));
    const p = own.get(name);
    if (!p || !(name.endsWith('.bias') || underSaved)) {
      throw new PeftError(`${adapter.weightsPath}: unexpected tensor '${HF_PEFT_PREFIX}${key}' (${p ? 'not a tensor of' : 'the model has no such tensor for'} method '${id}', a bias or a module in modules_to_save)`);
    }
    const data = adapter.float32(key, p.shape, `'${name}'`);
    adapter.stage(p, data, key);
  }
  return { config: adapter.config, loaded: adapter.commit().sort() };
}

export type AdapterFormat = 'peftjs' | 'hf-peft';

/** Which format `dir` holds (by its adapter_config.json). */
export function detectAdapterFormat(dir: string): AdapterFormat {
  const path = join(dir, ADAPTER_CONFIG_FILE);
  if (!existsSync(path)) throw new PeftError(`${dir}: no adapter here (no ${ADAPTER_CONFIG_FILE})`);
  const j = readJsonObject(path);
  if (j.format === ADAPTER_FORMAT) return 'peftjs';
  if (typeof j.peft_type === 'string') return 'hf-peft';
  throw new PeftError(`${path}: neither a peftjs adapter ('format': '${ADAPTER_FORMAT}') nor a Hugging Face PEFT one ('peft_type')`);
}

/** Loads a peftjs or a Hugging Face PEFT adapter into `target`, whichever `dir` holds. */
export function loadAnyAdapter(dir: string, target: AdapterTarget, methods: HfPeftMethods): { format: AdapterFormat; loaded: string[] } {
  const format = detectAdapterFormat(dir);
  if (format === 'peftjs') return { format, loaded: loadAdapter(dir, target).loaded };
  return { format, loaded: loadHfPeftAdapter(dir, target, methods).loaded };
}

/** What an adapter folder asks of a run that starts from it. */
export interface AdapterMethod {
  format: AdapterFormat;
  /** The method that reads it, and its raw config (validate with the registry). */
  id: string;
  config: Record<string, unknown>;
  /**
   * Whether the mask decoder trained with it: a Hugging Face adapter lists it
   * in modules_to_save, a peftjs one saved its tensors (undefined there when
   * the decoder's path was not given).
   */
  trainDecoder?: boolean;
}

/** The backbone an adapter is read for: its sites and the path of its mask decoder. */
export interface AdapterHost {
  sites: readonly InjectionSite[];
  decoderPath?: string;
}

/**
 * The method (id and config) that receives the adapter in `dir` on a backbone
 * with these sites: a peftjs adapter says it; a Hugging Face one names its
 * peft_type, whose codec translates the config (PEFT's module selection rules
 * applied first). A modules_to_save entry other than the mask decoder is an
 * error: peftjs trains only the method and the decoder.
 */
export function adapterMethod(dir: string, host: AdapterHost, methods: HfPeftMethods): AdapterMethod {
  const format = detectAdapterFormat(dir);
  const decoder = host.decoderPath;
  if (format === 'peftjs') {
    const c = readAdapterConfig(dir);
    const trainDecoder = decoder === undefined ? undefined : c.trainable_tensors.some((k) => k.startsWith(`${decoder}.`));
    return { format, id: c.method, config: c.config, trainDecoder };
  }
  const adapter = new HfPeftAdapterFolder(dir);
  const { id, codec } = readerOf(adapter, methodList(methods));
  const selectedPaths = new Set(peftSelectedModules(adapter.config, host.sites.map((s) => s.path), adapter.configPath));
  const config = codec.methodConfig(adapter, { all: host.sites, selected: host.sites.filter((s) => selectedPaths.has(s.path)) });
  const saved = adapter.modulesToSave();
  if (decoder !== undefined) {
    // PEFT wraps every module whose name ends with an entry
    const other = saved.filter((m) => !decoder.endsWith(m));
    if (other.length) adapter.fail(`'modules_to_save' names ${other.map((m) => `'${m}'`).join(', ')}, but besides the method peftjs trains only the mask decoder ('${decoder}')`);
  }
  return { format, id, config, trainDecoder: saved.length > 0 };
}
