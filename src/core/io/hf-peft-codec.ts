// The capability a method plugin declares to read and write Hugging Face
// PEFT's adapter format (`adapter_config.json` + `adapter_model.safetensors`).
// Core (`hf-peft.ts`) owns what is common to every PEFT method: the
// `base_model.model.` prefix, adapter names (`.default`), modules_to_save
// (the trained mask decoder), trained biases, base_model_name_or_path, and
// dispatch by `peft_type`. The codec owns the method's own config keys and
// tensor names.
// NOTE: first draft of the contract; the HF PEFT work refines it.
import type { Module } from '../nn/module.js';
import type { InjectionSite } from '../peft/injection-site.js';
import type { LayerInjector } from '../peft/layer-injector.js';
import type { RawTensor, TensorToWrite } from './safetensors.js';

/** What a codec exports from. */
export interface HfPeftExportInput {
  readonly model: Module;
  readonly method: LayerInjector;
  /** Names of the tensors the method added. */
  readonly methodKeys: string[];
}

export interface HfPeftExportPart {
  /** The method's keys of adapter_config.json (`peft_type`, `r`, `target_modules`, …). */
  config: Record<string, unknown>;
  /** The method's tensors by PEFT's module-relative name (`<path>.lora_A.weight`), without the prefix. */
  tensors: Map<string, TensorToWrite>;
  /** Model tensor names these cover (so core does not write them again). */
  covers: string[];
  /** Module paths the method adapted (core writes their trained biases as `<path>.base_layer.bias`). */
  adaptedPaths: string[];
}

export interface HfPeftImportInput {
  /** adapter_config.json, parsed (core has checked it is an object with a string peft_type). */
  config: Record<string, unknown>;
  /** The adapter's tensors by module-relative name (prefix and adapter name removed). */
  tensors: ReadonlyMap<string, RawTensor>;
  /** For messages: the config file's path. */
  where: string;
}

export interface HfPeftCodec<C = any> {
  /** PEFT's `peft_type` values this codec reads; the first is the one it writes. */
  peftTypes: string[];
  /** The method's part of an export. */
  exportAdapter(input: HfPeftExportInput, config: C): Promise<HfPeftExportPart>;
  /** The peftjs method config an adapter describes, for a backbone with these injection sites. */
  methodConfig(input: HfPeftImportInput, sites: InjectionSite[]): Record<string, unknown>;
  /**
   * Loads the method's tensors into `model` (the method already injected with
   * `methodConfig`'s config). Checks every tensor before assigning any;
   * returns the tensor names it used.
   */
  loadAdapter(input: HfPeftImportInput, model: Module, method: LayerInjector): string[];
}
