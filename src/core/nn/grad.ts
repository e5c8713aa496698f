import * as tf from '@tensorflow/tfjs';

/**
 * `f()` and its gradients with respect to `xs` (variables, trainable or not, or
 * any tensors), in the order given. A tensor `f` does not depend on gets a zero
 * gradient. The caller disposes value and grads.
 */
export function valueAndGrads(f: () => tf.Scalar, xs: tf.Tensor[]): { value: tf.Scalar; grads: tf.Tensor[] } {
  const { value, grads } = tf.engine().gradients(f, xs, undefined, true);
  return {
    value: value as tf.Scalar,
    grads: grads.map((g, i) => g ?? tf.zerosLike(xs[i]!)),
  };
}
