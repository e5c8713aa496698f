// Multi-head attention as batched matrix products over `[M * heads, N, d]`
// (no einsum): the form both the image encoder and the two-way transformer use.
import { tf } from '../../src/index.js';

/** `[M, N, heads * d]` → `[M * heads, N, d]`. */
export function splitHeads(x: tf.Tensor, heads: number): tf.Tensor3D {
  const [m, n, c] = x.shape as [number, number, number];
  const d = c / heads;
  return tf.reshape(tf.transpose(tf.reshape(x, [m, n, heads, d]), [0, 2, 1, 3]), [m * heads, n, d]);
}

/** `[M * heads, N, d]` → `[M, N, heads * d]`. */
export function mergeHeads(x: tf.Tensor, heads: number): tf.Tensor3D {
  const [mh, n, d] = x.shape as [number, number, number];
  const m = mh / heads;
  return tf.reshape(tf.transpose(tf.reshape(x, [m, heads, n, d]), [0, 2, 1, 3]), [m, n, heads * d]);
}

/**
 * `softmax(q kᵀ · scale) v` for `q [G, Nq, d]`, `k, v [G, Nk, d]` → `[G, Nq, d]`.
 * The scale multiplies q (Nq·d values) rather than the logits (Nq·Nk).
 */
export function scaledDotAttention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, scale: number): tf.Tensor3D {
  return tf.tidy(() => {
    const logits = tf.matMul(tf.mul(q, scale) as tf.Tensor3D, k as tf.Tensor3D, false, true);
    return tf.matMul(tf.softmax(logits, -1), v as tf.Tensor3D);
  });
}
