// AdaLoRA's orthogonal regulariser, added to the training loss:
//   weight * mean over the 2n matrices of ||A A^T - I||_F and ||B^T B - I||_F
// (Frobenius norms, not squared). >= 0, and exactly 0 for orthonormal factors;
// its gradient at a zero norm is 0 (as PyTorch's), never NaN.
//
// The gradient is written out rather than taped: with D = A A^T - I (symmetric),
// d||D||/dA = 2 D A / ||D||, and for D = B^T B - I, d||D||/dB = 2 B D / ||D||.
// Autodiff through the matrix product, the norm and its zero guard ran about 20
// small kernels per matrix (80 matrices in a MobileSAM step); this runs 5 forward
// and 2 backward per matrix, plus a few for all of them.
import { tf } from '../../src/index.js';

/** One factor and the side its Gram matrix is taken on. */
interface Factor {
  x: tf.Tensor2D;
  /** 'rows': x x^T (A [r, in]); 'cols': x^T x (B [out, r]). */
  side: 'rows' | 'cols';
}

/** `D = Gram(x) - I`, `[r, r]`. */
function gramMinusIdentity(f: Factor, eye: (r: number) => tf.Tensor2D): tf.Tensor2D {
  const gram = f.side === 'rows' ? tf.matMul(f.x, f.x, false, true) : tf.matMul(f.x, f.x, true, false);
  return tf.sub(gram, eye(gram.shape[0]));
}

/**
 * `weight / count * sum_i ||D_i||_F` over the factors, with the gradient above:
 * `dx_i = dy * weight / count * 2 (D_i x_i or x_i D_i) / ||D_i||`, 0 where `||D_i|| = 0`.
 */
function regulariserOp(sides: Factor['side'][], weight: number, count: number): (...xs: tf.Tensor[]) => tf.Scalar {
  return tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args[sides.length] as tf.GradSaveFunc;
    const factors = sides.map((side, i): Factor => ({ x: args[i] as tf.Tensor2D, side }));
    const eyes = new Map<number, tf.Tensor2D>();
    const eye = (r: number): tf.Tensor2D => {
      let e = eyes.get(r);
      if (!e) eyes.set(r, (e = tf.eye(r)));
      return e;
    };
    const ds = factors.map((f) => gramMinusIdentity(f, eye));
    const norms = ds.map((d) => tf.sqrt(tf.sum(tf.square(d))));
    let sum: tf.Scalar = tf.scalar(0);
    for (const n of norms) sum = tf.add(sum, n);
    // all norms in one vector: the backward pass turns them into coefficients in one go
    save([...factors.map((f) => f.x), ...ds, tf.stack(norms)]);
    return {
      value: tf.div(tf.mul(sum, weight), count) as tf.Scalar,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const xs = saved.slice(0, sides.length) as tf.Tensor2D[];
        const dsSaved = saved.slice(sides.length, 2 * sides.length) as tf.Tensor2D[];
        const n = saved[2 * sides.length]!;
        // c_i = dy * weight / count * 2 / ||D_i||, and 0 where ||D_i|| is 0
        const zero = tf.equal(n, 0);
        const c = tf.where(zero, tf.zerosLike(n), tf.div(tf.mul(tf.div(tf.mul(dy, weight), count), 2), tf.where(zero, tf.onesLike(n), n)));
        const cs = tf.unstack(c);
        return xs.map((x, i) => {
          const dx = sides[i] === 'rows' ? tf.matMul(dsSaved[i]!, x) : tf.matMul(x, dsSaved[i]!);
          return tf.mul(dx, cs[i]!);
        });
      },
    };
  });
}

/**
 * The regulariser for matrices `A [r, in]` and `B [out, r]`: `weight` times the
 * average of `||A A^T - I||_F` and `||B^T B - I||_F` over all of them (summed
 * in order A1, B1, A2, B2, ... as the reference does).
 */
export function orthogonalRegulariser(factors: { A: tf.Tensor; B: tf.Tensor }[], weight: number): tf.Scalar {
  return tf.tidy(() => {
    if (factors.length === 0 || weight === 0) return tf.scalar(0);
    // a rank-0 factor's Gram matrix is empty: its distance is 0 and it has no gradient to give
    const used = factors.flatMap(({ A, B }) => [
      { x: A, side: 'rows' as const },
      { x: B, side: 'cols' as const },
    ]).filter((f) => (f.side === 'rows' ? f.x.shape[0] : f.x.shape[1]) !== 0);
    if (used.length === 0) return tf.scalar(0);
    const op = regulariserOp(used.map((f) => f.side), weight, 2 * factors.length);
    return op(...used.map((f) => f.x));
  });
}
