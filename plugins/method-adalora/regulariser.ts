// AdaLoRA's orthogonal regulariser, added to the training loss:
//   weight * mean over the 2n matrices of ||A A^T - I||_F and ||B^T B - I||_F
// (Frobenius norms, not squared). >= 0, and exactly 0 for orthonormal factors;
// its gradient at a zero norm is 0 (as PyTorch's), never NaN.
//
// The norms are core `orthogonalityNorms` (src/core/nn/orthogonality.ts), all
// the factors at once: on the native kernels one call each way for every
// factor of the model (the ~5 forward and 2 backward tfjs kernels per matrix
// of its composite form, 80 matrices in a MobileSAM step, where they are not),
// then their sum, weighted.
import { orthogonalityNorms, tf, type GramSide } from '../../src/index.js';

/**
 * The regulariser for matrices `A [r, in]` and `B [out, r]`: `weight` times the
 * average of `||A A^T - I||_F` and `||B^T B - I||_F` over all of them.
 */
export function orthogonalRegulariser(factors: { A: tf.Tensor; B: tf.Tensor }[], weight: number): tf.Scalar {
  return tf.tidy(() => {
    if (factors.length === 0 || weight === 0) return tf.scalar(0);
    // a rank-0 factor's Gram matrix is empty: its distance is 0 and it has no gradient to give
    const used = factors
      .flatMap(({ A, B }) => [
        { x: A as tf.Tensor2D, side: 'rows' as GramSide },
        { x: B as tf.Tensor2D, side: 'cols' as GramSide },
      ])
      .filter((f) => (f.side === 'rows' ? f.x.shape[0] : f.x.shape[1]) !== 0);
    if (used.length === 0) return tf.scalar(0);
    const norms = orthogonalityNorms(
      used.map((f) => f.x),
      used.map((f) => f.side),
    );
    return tf.div(tf.mul(tf.sum(norms), weight), 2 * factors.length) as tf.Scalar;
  });
}
