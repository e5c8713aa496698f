// Adapter files: what a trained PEFT model adds to its base, in two files
// written atomically into one directory:
//   adapter_config.json        method id and validated config, backbone id and
//                              preset, the plugins that provided them (name,
//                              version, path: see registry/provenance.ts),
//                              adapted sites, the method's own state
//                              (AdaLoRA's rank pattern), the tensor list;
//   adapter_model.safetensors  the method's parameters and buffers plus every
//                              other trainable parameter (e.g. biases in LoRA's
//                              bias modes, the mask decoder), under the
//                              model's official dotted names, float32.
// Loading validates both files against the model (clear errors naming the
// file and the key) and restores every tensor bit for bit.
import * as tf from '@tensorflow/tfjs';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PeftError } from '../errors.js';
import { briefValue, quoteName } from '../text.js';
import type { Module } from '../nn/module.js';
import type { InjectionSite } from '../peft/injection-site.js';
import type { LayerInjector } from '../peft/layer-injector.js';
import { parseUsedPlugins, provenanceMetadata, usedPluginsOf, type UsedPlugins } from '../registry/provenance.js';
import { writeFileAtomic } from './atomic.js';
import { readRegularTextFile } from './read-regular-file.js';
import { readSafetensors, serializeSafetensors, tensorsToEntries, toTensor } from './safetensors.js';

export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';
export const ADAPTER_FORMAT = 'peftjs.adapter';
export const ADAPTER_FORMAT_VERSION = 1;

/** The index of the first value that is Inf or NaN, or -1: an adapter's weights are checked before any is assigned. */
export function firstNonFinite(values: ArrayLike<number>): number {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i]!)) return i;
  return -1;
}

/**
 * An optional capability of a LayerInjector, used by `saveAdapter`: the tensors
 * to write, given the live ones by name (AdaLoRA prunes A, E, B to its rank
 * pattern here). Entries it creates are disposed by the caller.
 */
export interface AdapterTensorExport {
  exportAdapterTensors(model: Module, tensors: Map<string, tf.Tensor>): Map<string, tf.Tensor>;
}

/** What is saved: a PeftModel (from `compose`) satisfies this. */
export interface AdapterSource {
  readonly model: Module;
  readonly method: LayerInjector;
  /** Names of the tensors the method added (parameters and buffers). */
  readonly methodKeys: string[];
  readonly sites?: InjectionSite[];
  readonly backbone?: { readonly id: string; readonly preset: string };
}

/** Where an adapter is loaded: a model with the same method already injected (a PeftModel satisfies this). */
export interface AdapterTarget {
  readonly model: Module;
  readonly method: LayerInjector;
  /** When given, every one of these must be in the file. */
  readonly methodKeys?: string[];
  readonly backbone?: { readonly id: string; readonly preset: string };
}

export interface AdapterConfigFile {
  format: typeof ADAPTER_FORMAT;
  version: number;
  method: string;
  config: Record<string, unknown>;
  backbone: { id: string; preset: string } | null;
  /**
   * The plugins that provided the method and the backbone (absent in files
   * written before peftjs recorded them, or for a model not built by a registry).
   */
  plugins?: UsedPlugins;
  sites: { path: string; kind: string; role: string }[];
  /** The method's `adapterState` (e.g. `{ rank_pattern }`), or {}. */
  state: Record<string, unknown>;
  /** Tensors in the weights file that the method added. */
  method_tensors: string[];
  /** Other trainable parameters in the weights file. */
  trainable_tensors: string[];
}

export interface SaveAdapterOptions {
  /** Also save trainable parameters the method did not add (default true). */
  includeTrainable?: boolean;
}

export interface SaveAdapterResult {
  configPath: string;
  weightsPath: string;
  tensors: string[];
  bytes: number;
}

function hasExport(m: LayerInjector): m is LayerInjector & AdapterTensorExport {
  return typeof (m as Partial<AdapterTensorExport>).exportAdapterTensors === 'function';
}

/** Writes `adapter_model.safetensors` then `adapter_config.json` into `dir`, each atomically. */
export async function saveAdapter(dir: string, source: AdapterSource, options: SaveAdapterOptions = {}): Promise<SaveAdapterResult> {
  const all = new Map(source.model.namedTensors());
  const methodKeys = source.methodKeys.filter((k) => all.has(k));
  for (const k of source.methodKeys) if (!all.has(k)) throw new PeftError(`cannot save adapter: the model has no tensor '${k}'`);
  const inMethod = new Set(methodKeys);
  const trainableKeys =
    options.includeTrainable ?? true ? source.model.trainableParameters().map(([k]) => k).filter((k) => !inMethod.has(k)) : [];
  const live = new Map<string, tf.Tensor>();
  for (const k of [...methodKeys, ...trainableKeys]) live.set(k, all.get(k)!.variable);
  const toWrite = hasExport(source.method) ? source.method.exportAdapterTensors(source.model, live) : live;
  const state = source.method.adapterState?.(source.model) ?? {};
  let bytes: Uint8Array;
  try {
    bytes = serializeSafetensors(await tensorsToEntries(toWrite), { format: 'pt', ...provenanceMetadata(source) });
  } finally {
    for (const [k, t] of toWrite) if (live.get(k) !== t) t.dispose();
  }
  // the registry remembers which plugin built the method and the backbone
  const plugins = usedPluginsOf(source);
  const config: AdapterConfigFile = {
    format: ADAPTER_FORMAT,
    version: ADAPTER_FORMAT_VERSION,
    method: source.method.id,
    config: { ...source.method.config },
    backbone: source.backbone ? { id: source.backbone.id, preset: source.backbone.preset } : null,
    ...(plugins.method || plugins.backbone ? { plugins } : {}),
    sites: (source.sites ?? []).map((s) => ({ path: s.path, kind: s.kind, role: s.role })),
    state,
    method_tensors: methodKeys,
    trainable_tensors: trainableKeys,
  };
  const weightsPath = join(dir, ADAPTER_WEIGHTS_FILE);
  const configPath = join(dir, ADAPTER_CONFIG_FILE);
  writeFileAtomic(weightsPath, bytes);
  writeFileAtomic(configPath, `${JSON.stringify(config, null, 2)}\n`);
  return { configPath, weightsPath, tensors: [...toWrite.keys()].sort(), bytes: bytes.byteLength };
}

/** A value or a name for a message: escaped and cut short (a hostile file can hold megabytes in one field; core/text.ts). */
const brief = (v: unknown, max = 80): string => briefValue(v, max);

function stringList(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((s) => typeof s === 'string');
}

/** Reads and validates `dir/adapter_config.json`. */
export function readAdapterConfig(dir: string): AdapterConfigFile {
  const path = join(dir, ADAPTER_CONFIG_FILE);
  if (!existsSync(path)) throw new PeftError(`${path}: no adapter here (file not found)`);
  const text = readRegularTextFile(path, 'json');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new PeftError(`${path}: not valid JSON (${(err as Error).message.split('\n')[0]})`);
  }
  const bad = (key: string, what: string): never => {
    throw new PeftError(`${path}: '${key}' ${what}`);
  };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) bad('(root)', 'must be a JSON object');
  const j = raw as Record<string, unknown>;
  if (j.format !== ADAPTER_FORMAT) bad('format', `must be '${ADAPTER_FORMAT}', got ${brief(j.format)}`);
  if (j.version !== ADAPTER_FORMAT_VERSION) bad('version', `${brief(j.version)} is not supported (expected ${ADAPTER_FORMAT_VERSION})`);
  if (typeof j.method !== 'string' || !j.method) bad('method', 'must be a method id');
  if (typeof j.config !== 'object' || j.config === null || Array.isArray(j.config)) bad('config', 'must be an object');
  const b = j.backbone;
  if (b !== null && b !== undefined) {
    const bb = b as Record<string, unknown>;
    if (typeof bb !== 'object' || typeof bb.id !== 'string' || typeof bb.preset !== 'string') bad('backbone', 'must be {id, preset} or null');
  }
  const plugins = j.plugins === undefined ? undefined : parseUsedPlugins(j.plugins, `${path}: 'plugins'`);
  if (j.sites !== undefined && !Array.isArray(j.sites)) bad('sites', 'must be a list');
  if (j.state !== undefined && (typeof j.state !== 'object' || j.state === null || Array.isArray(j.state))) bad('state', 'must be an object');
  if (!stringList(j.method_tensors)) bad('method_tensors', 'must be a list of tensor names');
  if (j.trainable_tensors !== undefined && !stringList(j.trainable_tensors)) bad('trainable_tensors', 'must be a list of tensor names');
  return {
    format: ADAPTER_FORMAT,
    version: ADAPTER_FORMAT_VERSION,
    method: j.method as string,
    config: j.config as Record<string, unknown>,
    backbone: (b as AdapterConfigFile['backbone']) ?? null,
    ...(plugins ? { plugins } : {}),
    sites: (j.sites as AdapterConfigFile['sites']) ?? [],
    state: (j.state as Record<string, unknown>) ?? {},
    method_tensors: j.method_tensors as string[],
    trainable_tensors: (j.trainable_tensors as string[]) ?? [],
  };
}

export interface LoadAdapterOptions {
  /** Require the saved method config to equal the target method's (default true). */
  checkConfig?: boolean;
}

export interface LoadAdapterResult {
  config: AdapterConfigFile;
  loaded: string[];
}

/**
 * Loads `dir` into `target` (a model with the saved method already injected,
 * with the same config): checks the method and config, restores the method's
 * state (AdaLoRA rebuilds pruned shapes), then assigns every tensor. Nothing is
 * assigned unless every tensor fits. A load that fails after the method's
 * state was restored (a rank pattern that disagrees with the weights) leaves
 * that state in the model: discard the model then.
 */
export function loadAdapter(dir: string, target: AdapterTarget, options: LoadAdapterOptions = {}): LoadAdapterResult {
  const cfg = readAdapterConfig(dir);
  const cfgPath = join(dir, ADAPTER_CONFIG_FILE);
  const weightsPath = join(dir, ADAPTER_WEIGHTS_FILE);
  if (cfg.method !== target.method.id) {
    throw new PeftError(`${cfgPath}: 'method' is '${brief(cfg.method)}' but the model's method is '${target.method.id}'`);
  }
  if (options.checkConfig ?? true) {
    const mine = target.method.config as Record<string, unknown>;
    for (const key of new Set([...Object.keys(cfg.config), ...Object.keys(mine)])) {
      const a = JSON.stringify(cfg.config[key]);
      const b = JSON.stringify(mine[key]);
      if (a !== b) {
        throw new PeftError(`${cfgPath}: 'config.${brief(key)}' is ${a === undefined ? 'absent' : brief(cfg.config[key])} but the model's ${cfg.method} has ${b === undefined ? 'none' : brief(mine[key])}`);
      }
    }
  }
  if (cfg.backbone && target.backbone && cfg.backbone.id !== target.backbone.id) {
    throw new PeftError(`${cfgPath}: 'backbone.id' is '${brief(cfg.backbone.id)}' but the model is '${target.backbone.id}'`);
  }
  const file = readSafetensors(weightsPath);
  for (const key of [...cfg.method_tensors, ...cfg.trainable_tensors]) {
    if (!file.tensors.has(key)) throw new PeftError(`${weightsPath}: missing tensor '${brief(key)}' (listed in ${ADAPTER_CONFIG_FILE})`);
  }
  // everything that does not depend on the method's state is checked before the state changes the model
  const names = new Set([...target.model.namedTensors()].map(([k]) => k));
  for (const [key, raw] of file.tensors) {
    if (!names.has(key)) throw new PeftError(`${weightsPath}: unexpected tensor '${brief(key)}' (the model has no such parameter)`);
    if (!['F32', 'I32', 'I64'].includes(raw.dtype)) throw new PeftError(`${weightsPath}: tensor '${brief(key)}' has dtype ${raw.dtype}; adapters are saved as F32`);
  }
  if (target.method.loadAdapterState && Object.keys(cfg.state).length > 0) {
    try {
      target.method.loadAdapterState(target.model, cfg.state);
    } catch (err) {
      if (err instanceof PeftError) throw new PeftError(`${cfgPath}: 'state': ${brief(err.message, 240)}`);
      throw err;
    }
  }
  const own = new Map(target.model.namedTensors());
  for (const key of target.methodKeys ?? []) {
    if (own.has(key) && !file.tensors.has(key)) throw new PeftError(`${weightsPath}: missing tensor '${brief(key)}' (a parameter of the method)`);
  }
  for (const [key, raw] of file.tensors) {
    const p = own.get(key);
    if (!p) throw new PeftError(`${weightsPath}: unexpected tensor '${brief(key)}' (the model has no such parameter)`);
    if (raw.shape.join(',') !== p.shape.join(',')) {
      throw new PeftError(`${weightsPath}: tensor '${brief(key)}' has shape [${brief(raw.shape.join(','))}] but the model expects [${p.shape}]`);
    }
  }
  // convert every tensor first (an int64 value may not fit, a float may be Inf or NaN), then assign them all
  const ready: [string, tf.Tensor][] = [];
  try {
    for (const [key, raw] of file.tensors) {
      const t = toTensor(raw, `${weightsPath}: ${brief(key)}`);
      ready.push([key, t]);
      if (t.dtype === 'float32') {
        const values = t.dataSync();
        const bad = firstNonFinite(values);
        if (bad >= 0) throw new PeftError(`${weightsPath}: tensor ${quoteName(key)} holds a non-finite value (${values[bad]} at index ${bad})`);
      }
    }
  } catch (err) {
    tf.dispose(ready.map(([, t]) => t));
    throw err;
  }
  const loaded: string[] = [];
  for (const [key, t] of ready) {
    const p = own.get(key)!;
    tf.tidy(() => p.assign(t.dtype === p.dtype ? t : tf.cast(t, p.dtype)));
    t.dispose();
    loaded.push(key);
  }
  return { config: cfg, loaded };
}
