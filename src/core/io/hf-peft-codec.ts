// The capability a method plugin declares (`MethodDefinition.hfPeft`) to write
// and read Hugging Face PEFT's adapter format (`adapter_config.json` +
// `adapter_model.safetensors`). Core (`hf-peft.ts`) owns what every PEFT
// method shares: the two files, the `base_model.model.` prefix, adapter names
// (`.default`), `modules_to_save` (the trained mask decoder), trained biases
// (`<path>.base_layer.bias`), `base_model_name_or_path`, PEFT's module
// selection rules (target_modules, exclude_modules, layers_to_transform,
// layers_pattern) and dispatch by `peft_type`. A codec owns its method's config
// keys and tensor names, and nothing else.
import type { Module } from '../nn/module.js';
import type { Parameter } from '../nn/parameter.js';
import type { InjectionSite } from '../peft/injection-site.js';
import type { LayerInjector } from '../peft/layer-injector.js';
import type { RawTensor, TensorToWrite } from './safetensors.js';

/** What a codec exports from: a composed model (a `PeftModel` satisfies this). */
export interface HfPeftExportInput {
  readonly model: Module;
  readonly method: LayerInjector;
  /** Names of the tensors the method added. */
  readonly methodKeys: readonly string[];
  /** The sites the method adapted, when known. */
  readonly sites?: readonly InjectionSite[];
}

/** The method's part of an export; core adds the rest. */
export interface HfPeftExportPart {
  /**
   * The method's keys of adapter_config.json (`r`, `lora_alpha`, `feedforward_modules`, …).
   * Core writes `peft_type` (the codec's first), `task_type`, `base_model_name_or_path`,
   * `revision`, `inference_mode` and `modules_to_save`, and refuses a part that sets them;
   * `target_modules` defaults to `adaptedPaths`.
   */
  config: Record<string, unknown>;
  /** The method's tensors by module-relative name (`<path>.lora_A.weight`), without PEFT's prefix. */
  tensors: Map<string, TensorToWrite>;
  /** The module paths the method adapted (core names their trained biases `<path>.base_layer.bias`). */
  adaptedPaths: string[];
  /** Model tensors these tensors stand for, beyond the method's own (core does not write those again). */
  covers?: string[];
}

/** An adapter folder being read, with the helpers a codec needs. Messages name the file and PEFT's full key. */
export interface HfPeftAdapter {
  readonly configPath: string;
  readonly weightsPath: string;
  /** adapter_config.json as parsed (an object with a string `peft_type`). */
  readonly config: Readonly<Record<string, unknown>>;
  readonly peftType: string;
  /** Tensors by module-relative name (`blocks.0.attn.qkv.lora_A.weight`): PEFT's prefix and the adapter name removed. */
  readonly tensors: ReadonlyMap<string, RawTensor>;
  /** Throws a PeftError `<config path>: <message>`. */
  fail(message: string): never;
  /** A numeric config key; absent or null gives `fallback`; anything else (or no fallback) fails naming the key. */
  number(key: string, fallback?: number): number;
  /** A boolean config key; absent or null gives `fallback`. */
  boolean(key: string, fallback: boolean): boolean;
  /** The module paths that have a tensor `<path>.<suffix>`. */
  modulesWith(suffix: string): string[];
  /** A tensor that must be present (not marked as used); missing fails naming PEFT's key and `what`. */
  tensor(key: string, what: string): RawTensor;
  /** A tensor as float32, of exactly `shape`, marked as used; missing or mis-shaped fails naming PEFT's key. */
  float32(key: string, shape: readonly number[], what: string): Float32Array;
  /** Queues `data` for `param`. Core assigns every queued tensor only after the whole adapter was checked. */
  stage(param: Parameter, data: Float32Array, key: string): void;
}

/** The backbone's injection sites, for translating a config into the method's. */
export interface HfPeftSites {
  /** Every injection site. */
  readonly all: readonly InjectionSite[];
  /**
   * The sites PEFT itself would adapt by this config (its `target_modules`,
   * `exclude_modules`, `layers_to_transform`/`layers_pattern` and
   * `modules_to_save` rules), in the backbone's order.
   */
  readonly selected: readonly InjectionSite[];
}

/** Where an adapter is loaded: a model with the codec's method already injected (a `PeftModel` satisfies this). */
export interface HfPeftLoadTarget {
  readonly model: Module;
  readonly method: LayerInjector;
}

export interface HfPeftCodec<C = any> {
  /** PEFT's `peft_type` values this codec reads; the first is the one it writes. */
  readonly peftTypes: readonly string[];
  /**
   * Why this codec does not read a config of one of its peft types, or
   * undefined when it does. Two methods may share a peft_type this way (LoRA
   * declines `use_dora: true`, which a DoRA method reads).
   */
  declines?(config: Readonly<Record<string, unknown>>): string | undefined;
  /** The method's part of an export, from a model the method was composed into with `config`. */
  exportAdapter(input: HfPeftExportInput, config: C): Promise<HfPeftExportPart>;
  /**
   * The method config (raw, validated by the caller) that receives this
   * adapter on a backbone with these sites. Fails, naming the key or module,
   * when the adapter cannot be represented.
   */
  methodConfig(adapter: HfPeftAdapter, sites: HfPeftSites): Record<string, unknown>;
  /**
   * Checks and stages (`adapter.stage`) the method's tensors for `target`,
   * whose method was built from `methodConfig`'s config or an equivalent one.
   * It may reshape the method's layers first (AdaLoRA's rank pattern); it
   * assigns nothing itself. Tensors it does not take are core's: biases and
   * modules_to_save, or an error.
   */
  loadAdapter(adapter: HfPeftAdapter, target: HfPeftLoadTarget): void;
}

/** A method as the HF PEFT mechanism sees it (a `MethodDefinition` satisfies this). */
export interface HfPeftMethod {
  readonly id: string;
  readonly hfPeft?: HfPeftCodec;
}

/** The methods to dispatch over: a `Registry`, or a list of method definitions. */
export type HfPeftMethods = { methods(): readonly HfPeftMethod[] } | readonly HfPeftMethod[];
