// Types of peftjs-dora's entry point (index.js), for TypeScript hosts and for
// the type-checked tests. `peftjs` is the host's public API: the package's peer
// dependency (in this repository, tsconfig.test.json maps it to src/index.ts).
import type * as Peftjs from 'peftjs';

/** Registers the method `dora` in the host's registry, built on the host's API (`import('peftjs')` when none is given). */
export declare function register(registry: Peftjs.Registry, peftjs?: typeof Peftjs): Promise<void>;

/** The DoRA method and its parts, built on a peftjs API object. */
export declare function createDora(peftjs: typeof Peftjs): {
  /** What `register` registers. */
  doraMethod: Peftjs.MethodDefinition<DoraConfig>;
  doraSchema: Peftjs.ConfigSchema<DoraConfig>;
  /** A linear adapted by DoRA: W0 (adopted), lora_A [r, in], lora_B [out, r], lora_magnitude_vector [out]. */
  DoraLinear: new (
    path: string,
    base: { weight: Peftjs.Parameter; bias?: Peftjs.Parameter },
    options: { r: number; scaling: number; dropout: number },
  ) => Peftjs.Module & { readonly r: number; readonly scaling: number; readonly merged: boolean; merge(): void; unmerge(): void };
  DoraInjector: new (config: DoraConfig) => Peftjs.LayerInjector & { readonly scaling: number };
};

/** The HF PEFT codec of `dora` (its `hfPeft`): LoRA adapters with `use_dora: true`. */
export declare function createDoraHfPeft(peftjs: typeof Peftjs, DoraLinear: Function): Peftjs.HfPeftCodec<DoraConfig>;

/** DoRA's validated config. */
export interface DoraConfig {
  /** Rank of the low-rank direction update. */
  r: number;
  /** Scaling numerator: the update is B A * alpha / r. */
  alpha: number;
  /** Dropout probability on the input of the DoRA terms (training only). */
  dropout: number;
  /** Linear sites adapted whole: roles, globs or /regex/ over paths. */
  targets: string[];
}
