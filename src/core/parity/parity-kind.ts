import type * as tf from '@tensorflow/tfjs';
import type { Fixture } from './fixture.js';
import type { Registry } from '../registry/registry.js';

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

/** Runs fixtures of one `kind`: builds the module from the config, loads `param/`, runs. */
export interface ParityKind {
  kind: string;
  summary?: string;
  /** `registry` lets a kind compose with other plugins (a SAM block with the `lora` method). */
  run(fixture: Fixture, ctx: { registry: Registry }): ParityOutput | Promise<ParityOutput>;
}
