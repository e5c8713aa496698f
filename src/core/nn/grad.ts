import * as tf from '@tensorflow/tfjs';
import { valueAndGradsLowMemory } from '../../accel/kernels/backprop.js';

/**
 * `f()` and its gradients with respect to `xs` (variables, trainable or not, or
 * any tensors), in the order given. A tensor `f` does not depend on gets a zero
 * gradient. The caller disposes value and grads.
 *
 * Backpropagation frees each saved tensor and intermediate gradient as soon as
 * it is used (results are bit-identical to the engine's own), which keeps peak
 * memory of a training step near the forward pass's.
 */
export function valueAndGrads(f: () => tf.Scalar, xs: tf.Tensor[]): { value: tf.Scalar; grads: tf.Tensor[] } {
  const { value, grads } = valueAndGradsLowMemory(f, xs);
  return { value, grads: grads.map((g, i) => g ?? tf.zerosLike(xs[i]!)) };
}
