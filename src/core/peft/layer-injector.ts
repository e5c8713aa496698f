import type * as tf from '@tensorflow/tfjs';
import type { Module } from '../nn/module.js';
import type { InjectionSite } from './injection-site.js';

export interface StepContext {
  /** The global optimiser step, 1-based, just completed. */
  step: number;
  model: Module;
  /** Gradients of this step by parameter name (the method's trainable parameters). Do not dispose. */
  grads: Map<string, tf.Tensor>;
}

/**
 * A PEFT method bound to a validated config. It selects the sites it adapts,
 * injects its modules there, and names the parameters it owns.
 */
export interface LayerInjector {
  readonly id: string;
  /** The validated config (defaults filled in). */
  readonly config: Readonly<Record<string, unknown>>;
  /** The sites this method adapts; a PeftError when its targets match nothing. */
  select(sites: InjectionSite[]): InjectionSite[];
  /** Adapts one site of `model` (replaces a linear, or hooks modules into a block). */
  inject(model: Module, site: InjectionSite): void;
  /** The number of parameters `inject` adds at `site` (the method's formula). */
  parameterCount(site: InjectionSite): number;
  /**
   * Base tensors (names in the composed `model`) the method deliberately
   * trains, beside its own: LoRA's bias modes `all` and `lora_only`. compose
   * freezes the whole backbone, then the method injects; the law suite fails
   * a method that leaves any other base tensor trainable, naming it.
   */
  trainableExtras?(model: Module): string[];
  /** A loss term added during training (AdaLoRA's orthogonality). */
  regulariser?(model: Module): tf.Scalar;
  /** Called after every optimiser step (AdaLoRA's rank allocation). */
  afterStep?(ctx: StepContext): void;
  /** Folds the update into the base weights, in place. */
  merge?(model: Module): void;
  /** Takes a merged update back out of the base weights. */
  unmerge?(model: Module): void;
  /** Extra state to save with the adapter (AdaLoRA's rank pattern). */
  adapterState?(model: Module): Record<string, unknown>;
  /**
   * Training state the method keeps outside the model (AdaLoRA's importance
   * averages), saved with training checkpoints so a resumed run continues
   * exactly. Live tensors: the caller does not dispose them.
   */
  trainingState?(): Map<string, tf.Tensor>;
  /** Restores `trainingState` (copies the tensors; the caller disposes its own). */
  loadTrainingState?(model: Module, state: Map<string, tf.Tensor>): void;
  /** Frees tensors the injector holds outside the model (AdaLoRA's importance statistics). */
  dispose?(): void;
  /** Restores what `adapterState` saved, before weights are loaded (may reshape parameters). */
  loadAdapterState?(model: Module, state: Record<string, unknown>): void;
}
