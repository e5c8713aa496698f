import * as tf from '@tensorflow/tfjs';
import type { Module } from '../nn/module.js';
import { valueAndGrads } from '../nn/grad.js';

/**
 * The value of `loss()` and its gradient with respect to every parameter of
 * `module` (buffers excluded; frozen ones included), keyed `grad/<name>`.
 */
export function gradsByName(module: Module, loss: () => tf.Scalar): { value: tf.Scalar; grads: Map<string, tf.Tensor> } {
  const named = module.namedParameters();
  const { value, grads } = valueAndGrads(loss, named.map(([, p]) => p.variable));
  const out = new Map<string, tf.Tensor>();
  named.forEach(([name], i) => out.set(`grad/${name}`, grads[i]!));
  return { value, grads: out };
}

/** `sum(y * upstream)`: the fixtures' default loss. */
export function dotLoss(y: tf.Tensor, upstream: tf.Tensor): tf.Scalar {
  return tf.sum(tf.mul(y, upstream));
}
