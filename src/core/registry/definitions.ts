// What a plugin registers: a method or a backbone, with everything it knows
// about itself. Core holds only the mechanisms that call these capabilities;
// nothing outside a plugin branches on its id. Every capability beyond `id`,
// `summary`, `schema` and `create` is optional: a method without `hfPeft`
// cannot be exported to Hugging Face PEFT, one without `flagKeys` takes its
// keys through `--set` only, and so on.
import type { Backbone } from '../peft/backbone.js';
import type { InjectionSite } from '../peft/injection-site.js';
import type { LayerInjector } from '../peft/layer-injector.js';
import type { ParityKind } from '../parity/parity-kind.js';
import type { Law, MethodLawOptions } from '../testing/law.js';
import type { HfPeftCodec } from '../io/hf-peft-codec.js';
import type { ConfigSchema } from './config.js';

/** The common method flags of `peft train`, `plan`, `verify`…; a method binds each to one of its config keys. */
export type MethodFlag = 'rank' | 'target-rank' | 'alpha' | 'mid-dim' | 'targets';

/** The common backbone flags; a backbone binds each to one of its config keys. */
export type BackboneFlag = 'image-size';

/** What a method learns about the run it is composed for (training only). */
export interface RunBinding {
  /** The run's total optimiser steps (from `--steps`, or epochs x batches per epoch). */
  totalSteps: number;
}

/** A PEFT method plugin. */
export interface MethodDefinition<C = any> {
  id: string;
  summary: string;
  /** Other names accepted on the command line (e.g. the reference's `sam_lora`). */
  aliases?: string[];
  /** A zod object schema with defaults and descriptions. `schema.parse({})` must succeed (checked at registration). */
  schema: ConfigSchema<C>;
  /** Builds the injector from a validated config. */
  create(config: C): LayerInjector;
  /** Names for people: the results table's "mode" (`LoRA`) and Medical-SAM-Adapter's `-mod` spelling (`sam_lora`). */
  display?: { name: string; mod?: string };
  /** Which config key each common flag sets (`{ rank: 'r', alpha: 'alpha' }`); a flag not bound here is refused for this method. */
  flagKeys?: Partial<Record<MethodFlag, string>>;
  /**
   * Config values that follow the run's length (AdaLoRA's `total_step` and
   * warm-ups), given the raw config the user set. Core applies a returned key
   * only when the user did not set it, then validates the result.
   */
  bindRun?(userConfig: Readonly<Record<string, unknown>>, run: RunBinding): Record<string, unknown>;
  /**
   * Lines that explain the method's schedule for a validated config and the
   * sites it adapts (`peft plan`), e.g. AdaLoRA's rank budget over the steps;
   * `totalSteps` is the planned run's length when known.
   */
  describeSchedule?(config: C, context: { sites: readonly InjectionSite[]; totalSteps?: number }): string[];
  /** The rule `bindRun` applies, in one or two sentences (`peft info`, docs). */
  runBindingRule?: string;
  /** Hugging Face PEFT's adapter format for this method (export and import). */
  hfPeft?: HfPeftCodec<C>;
  /**
   * Laws of its own, run by `peft verify` (and the tests) after the core laws
   * (AdaLoRA's rank budget and pruning). `def` is the definition under test:
   * this one, or one spread from it (`{ ...def, create }`, a test's broken
   * variant), so build subjects from `def`, not from a captured constant.
   * Write them with the public API's law tools: `checkLaw`, `violation`,
   * `Subject`, `toyShape`, `fc`.
   */
  laws?(def: MethodDefinition<C>, options: MethodLawOptions): Law[];
}

/** How to train: Adam's learning rate, its schedule over the run, and the run's length in optimiser steps. */
export interface TrainingRecipe {
  lr: number;
  /** `constant`, or `cosine` (decays to 0 at the last step). */
  lrSchedule: 'constant' | 'cosine';
  steps: number;
}

/** A backbone (model family) plugin. */
export interface BackboneDefinition<C = any> {
  id: string;
  summary: string;
  aliases?: string[];
  /** Named presets: partial configs merged over the schema's defaults. */
  presets: Record<string, Record<string, unknown>>;
  defaultPreset: string;
  schema: ConfigSchema<C>;
  create(config: C, preset: string): Backbone;
  /** Names for people: the model family (`MobileSAM`) and its encoder per preset (`Tiny-ViT`); `*` names any other preset. */
  display?: { family: string; encoders?: Record<string, string> };
  /**
   * Checkpoint keys the backbone derives itself and so skips when loading an
   * official checkpoint (TinyViT's `attention_bias_idxs`). Default: none.
   */
  isDerivedCheckpointKey?(key: string): boolean;
  /** Which config key each common backbone flag sets (`{ 'image-size': 'img_size' }`); a flag not bound here is refused for this backbone. */
  flagKeys?: Partial<Record<BackboneFlag, string>>;
  /**
   * How `peft train` trains it when it starts from its own random
   * initialisation (no `--checkpoint`): the settings for whichever of --lr,
   * --lr-schedule and --steps/--epochs the user leaves unset (the built-ins'
   * were measured on the embedded data at the `tiny` preset, docs/results.md).
   * Without it, such a run gets the reference's settings for pretrained
   * weights (Adam at a constant 1e-4, one epoch).
   */
  fromScratch?: TrainingRecipe;
}

export type { ParityKind };
