// The common protocol of the layer fixtures (lora, adalora, adapter): load
// `param/` into the layer, run `input/x`, and with `input/upstream` also the
// gradients of L = sum(y * upstream) for every parameter (`grad/<name>`).
import * as tf from '@tensorflow/tfjs';
import type { Module } from '../nn/module.js';
import type { Fixture } from './fixture.js';
import type { ParityOutput } from './parity-kind.js';
import { dotLoss, gradsByName } from './grads.js';

export interface LayerFixtureOptions {
  /** Load `param/` strictly (default true: every key present, none unexpected). */
  strict?: boolean;
  /** Adds outputs of its own (a merged weight, ...) before the layer is disposed. */
  extra?: (tensors: Map<string, tf.Tensor>) => void;
}

/** Runs a layer fixture on `layer` and disposes the layer. */
export function runLayerFixture(layer: Module & { forward(x: tf.Tensor): tf.Tensor }, fixture: Fixture, options: LayerFixtureOptions = {}): ParityOutput {
  try {
    const params = fixture.group('param/');
    try {
      layer.loadStateDict(params, { source: fixture.name, strict: options.strict ?? true });
    } finally {
      for (const t of params.values()) t.dispose();
    }
    const x = fixture.tensor('input/x');
    const tensors = new Map<string, tf.Tensor>();
    if (fixture.has('input/upstream')) {
      const upstream = fixture.tensor('input/upstream');
      let y: tf.Tensor | undefined;
      const { value, grads } = gradsByName(layer, () => {
        y = tf.keep(layer.forward(x));
        return dotLoss(y, upstream);
      });
      value.dispose();
      for (const [k, g] of grads) tensors.set(k, g);
      tensors.set('output/y', y!);
    } else {
      tensors.set('output/y', layer.forward(x));
    }
    options.extra?.(tensors);
    return { tensors };
  } finally {
    layer.dispose();
  }
}
