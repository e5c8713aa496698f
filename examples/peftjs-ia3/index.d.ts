// Types of peftjs-ia3's entry point (index.js), for TypeScript hosts and for
// the type-checked tests. `peftjs` is the host's public API: the package's peer
// dependency (in this repository, tsconfig.test.json maps it to src/index.ts).
import type * as Peftjs from 'peftjs';

/** Registers the method `ia3` in the host's registry, built on the host's API (`import('peftjs')` when none is given). */
export declare function register(registry: Peftjs.Registry, peftjs?: typeof Peftjs): Promise<void>;

/** The IA3 method and its parts, built on a peftjs API object. */
export declare function createIa3(peftjs: typeof Peftjs): {
  /** What `register` registers. */
  ia3Method: Peftjs.MethodDefinition<Ia3Config>;
  ia3Schema: Peftjs.ConfigSchema<Ia3Config>;
  /** A linear whose output groups (or input features) are scaled by a learned vector `ia3_l`. */
  Ia3Linear: new (
    base: { weight: Peftjs.Parameter; bias?: Peftjs.Parameter },
    options: { feedforward: boolean; enabled?: boolean[] },
  ) => Peftjs.Module & { merge(): void; unmerge(): void };
  Ia3Injector: new (config: Ia3Config) => Peftjs.LayerInjector;
};

/** IA3's validated config. */
export interface Ia3Config {
  /** Sites to rescale: roles ('mlp.fc2'), roles with output groups ('attn.qkv[k,v]'), globs or /regex/ over paths. */
  targets: string[];
  /** Targets whose input (the MLP hidden activations) is rescaled instead of their output. */
  feedforward: string[];
}
