import type * as tf from '@tensorflow/tfjs';
import type { Fixture } from './fixture.js';

/** A scalar the fixture's json states, checked with the fixture's tolerance. */
export interface ScalarCheck {
  name: string;
  actual: number | null;
  expected: number | null;
}

export interface ParityOutput {
  /** Actual tensors keyed as the fixture keys them (`output/y`, `grad/<param>`, `step/3/expect/<key>`). */
  tensors: Map<string, tf.Tensor>;
  scalars?: ScalarCheck[];
}

/**
 * The `Registry` a kind is handed. Declared empty here and completed in
 * registry.ts (`interface ParityRegistry extends Registry`, by interface
 * merging): the registry imports this file for `ParityKind`, so importing the
 * registry here would be an import cycle.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface ParityRegistry {}

/** Runs fixtures of one `kind`: builds the module from the config, loads `param/`, runs. */
export interface ParityKind {
  kind: string;
  summary?: string;
  /** `registry` lets a kind compose with other plugins (a SAM block with the `lora` method). */
  run(fixture: Fixture, ctx: { registry: ParityRegistry }): ParityOutput | Promise<ParityOutput>;
}
