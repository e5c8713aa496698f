// Scaled dot-product attention on the fast matrix product (`fast-matmul.ts`):
// `softmax(q k^T * scale + bias) v` over any leading (batch, window, head)
// axes. On wasm every product — forward and backward — runs as one fast 2-D
// product per matrix instead of the backend's slow batched/transposed loops.
// tf.softmax is the fused one where the native kernels are on: the addon
// replaces the Softmax kernel, and its gradient (src/core/native/softmax-grad.ts)
// is one pass, dx = dy y - sum(dy y) y, instead of four kernels; so for the
// plugins' attention blocks, which call tf.softmax themselves.
import * as tf from '@tensorflow/tfjs';
import { matMul } from './fast-matmul.js';

export interface AttentionOptions {
  /** Multiplies the logits (default 1). */
  scale?: number;
  /**
   * Where the scale applies: to the logits `(q k^T) * scale` (TinyViT, PyTorch's
   * scaled_dot_product_attention) or to the queries `(q * scale) k^T` (SAM).
   * Equal up to float rounding; choose the reference's form for bit-closeness.
   */
  scaleOn?: 'logits' | 'query';
  /** Added to the logits, broadcastable to `[..., Nq, Nk]` (relative-position or offset biases). */
  bias?: tf.Tensor;
}

/**
 * `softmax(q k^T * scale + bias) v` for `q [..., Nq, d]`, `k [..., Nk, d]`,
 * `v [..., Nk, dv]` with equal leading axes → `[..., Nq, dv]`.
 */
export function attention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, options: AttentionOptions = {}): tf.Tensor {
  const scale = options.scale ?? 1;
  return tf.tidy(() => {
    let logits: tf.Tensor;
    if (options.scaleOn === 'query') {
      logits = matMul(scale === 1 ? q : tf.mul(q, scale), k, false, true);
    } else {
      logits = matMul(q, k, false, true);
      if (scale !== 1) logits = tf.mul(logits, scale);
    }
    if (options.bias) logits = tf.add(logits, options.bias);
    return matMul(tf.softmax(logits), v);
  });
}
