// AdaLoRA's orthogonal regulariser, added to the training loss:
//   weight * mean over the 2n matrices of ||A A^T - I||_F and ||B^T B - I||_F
// (Frobenius norms, not squared). >= 0, and exactly 0 for orthonormal factors;
// its gradient at a zero norm is 0 (as PyTorch's), never NaN.
import { tf } from '../../src/index.js';

/** `||x||_F` with gradient `x / ||x||_F`, and 0 where the norm is 0. */
const frobenius = tf.customGrad(((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const x = args[0] as tf.Tensor;
  const save = args[1] as tf.GradSaveFunc;
  const norm = tf.sqrt(tf.sum(tf.square(x)));
  save([x, norm]);
  return {
    value: norm,
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [xs, n] = saved as [tf.Tensor, tf.Tensor];
      const zero = tf.equal(n, 0);
      const safe = tf.where(zero, tf.onesLike(n), n);
      return tf.where(zero, tf.zerosLike(xs), tf.mul(dy, tf.div(xs, safe)));
    },
  };
})) as (x: tf.Tensor) => tf.Scalar;

/** `||M - I||_F` for a square `M [r, r]`. */
function distanceToIdentity(m: tf.Tensor2D): tf.Scalar {
  const r = m.shape[0];
  if (r === 0) return tf.scalar(0);
  return frobenius(tf.sub(m, tf.eye(r)));
}

/**
 * The regulariser for matrices `A [r, in]` and `B [out, r]`: `weight` times the
 * average of `||A A^T - I||_F` and `||B^T B - I||_F` over all of them (summed
 * in order A1, B1, A2, B2, ... as the reference does).
 */
export function orthogonalRegulariser(factors: { A: tf.Tensor; B: tf.Tensor }[], weight: number): tf.Scalar {
  return tf.tidy(() => {
    if (factors.length === 0 || weight === 0) return tf.scalar(0);
    let sum: tf.Scalar = tf.scalar(0);
    for (const { A, B } of factors) {
      sum = tf.add(sum, distanceToIdentity(tf.matMul(A as tf.Tensor2D, A as tf.Tensor2D, false, true)));
      sum = tf.add(sum, distanceToIdentity(tf.matMul(B as tf.Tensor2D, B as tf.Tensor2D, true, false)));
    }
    return tf.div(tf.mul(sum, weight), 2 * factors.length);
  });
}
