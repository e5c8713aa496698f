// The distance of matrices from orthonormality, for many at once (AdaLoRA's
// orthogonal regulariser, as HF PEFT writes it: ||A A^T - I||_F, ||B^T B - I||_F):
//
//   norm_i = ||Gram(x_i) - I||_F,   Gram = x x^T ('rows') or x^T x ('cols'),   [count]
//
// Its gradient is written out rather than taped: with D = Gram - I (symmetric),
// d||D||/dx = 2 D x / ||D|| ('rows') or 2 x D / ||D|| ('cols'), and 0 at a zero
// norm (as PyTorch's), never NaN.
//
// Where the native kernels are registered (src/accel/native) this is one
// kernel each way for all the matrices (PeftOrthogonality,
// PeftOrthogonalityGrad; D recomputed in the backward pass, r x r for rank r)
// instead of ~5 forward and ~2 backward tfjs kernels per matrix. Elsewhere
// (and as the reference the native kernels are tested against) it is the
// composite form below.
import * as tf from '@tensorflow/tfjs';
import { PEFT_ORTHOGONALITY, PEFT_ORTHOGONALITY_GRAD, fusedKernelActive } from '../../accel/native/fused-names.js';

/** The side a matrix's Gram matrix is taken on: 'rows' x x^T (A [r, in]), 'cols' x^T x (B [out, r]). */
export type GramSide = 'rows' | 'cols';

interface Attrs {
  sides: number[];
}

function check(xs: readonly tf.Tensor[], sides: readonly GramSide[]): void {
  if (xs.length !== sides.length) throw new Error(`orthogonalityNorms: ${xs.length} matrices and ${sides.length} sides`);
  for (const x of xs) if (x.rank !== 2) throw new Error(`orthogonalityNorms: ${x.shape} is not a matrix`);
}

/**
 * `||Gram(x_i) - I||_F` for each matrix, `[count]` (a rank-0 Gram matrix's is 0);
 * differentiable, with gradient 0 where a norm is 0.
 */
export function orthogonalityNorms(xs: readonly tf.Tensor2D[], sides: readonly GramSide[]): tf.Tensor1D {
  check(xs, sides);
  if (xs.length === 0) return tf.zeros([0]) as tf.Tensor1D;
  const native = xs.every((x) => x.dtype === 'float32') && fusedKernelActive(PEFT_ORTHOGONALITY);
  if (!native) return orthogonalityNormsComposite(xs, sides);
  // an array (as Concat's inputs): the gradient saves them all, however many
  const inputs = [...xs] as unknown as tf.NamedTensorMap;
  const attrs: Attrs = { sides: sides.map((s) => (s === 'cols' ? 1 : 0)) };
  return tf.engine().runKernel(PEFT_ORTHOGONALITY, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor1D;
}

/** Whether `orthogonalityNorms` runs as the native kernels on the active backend (else its composite form). */
export function orthogonalityNormsIsNative(): boolean {
  return fusedKernelActive(PEFT_ORTHOGONALITY) && fusedKernelActive(PEFT_ORTHOGONALITY_GRAD);
}

/** `D = Gram(x) - I`, `[r, r]`. */
function gramMinusIdentity(x: tf.Tensor2D, side: GramSide): tf.Tensor2D {
  const gram = side === 'rows' ? tf.matMul(x, x, false, true) : tf.matMul(x, x, true, false);
  return tf.sub(gram, tf.eye(gram.shape[0]));
}

/** The gradients of the norms for `dn`, in tfjs ops: `dx_i = dn_i 2 (D_i x_i or x_i D_i) / n_i`, 0 where `n_i = 0`. */
function backwardComposite(dn: tf.Tensor, norms: tf.Tensor, xs: readonly tf.Tensor2D[], sides: readonly GramSide[]): tf.Tensor[] {
  return tf.tidy(() => {
    const zero = tf.equal(norms, 0);
    const c = tf.where(zero, tf.zerosLike(norms), tf.div(tf.mul(dn, 2), tf.where(zero, tf.onesLike(norms), norms)));
    const cs = tf.unstack(c);
    return xs.map((x, i) => {
      const d = gramMinusIdentity(x, sides[i]!);
      return tf.mul(sides[i] === 'rows' ? tf.matMul(d, x) : tf.matMul(x, d), cs[i]!);
    });
  });
}

/** The composite form (tfjs ops, the gradient above by a custom gradient): the reference of the native kernels. */
export function orthogonalityNormsComposite(xs: readonly tf.Tensor2D[], sides: readonly GramSide[]): tf.Tensor1D {
  check(xs, sides);
  if (xs.length === 0) return tf.zeros([0]) as tf.Tensor1D;
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args[xs.length] as tf.GradSaveFunc;
    const ms = args.slice(0, xs.length) as tf.Tensor2D[];
    const norms = tf.stack(ms.map((x, i) => tf.sqrt(tf.sum(tf.square(gramMinusIdentity(x, sides[i]!)))))) as tf.Tensor1D;
    save([...ms, norms]);
    return {
      value: norms,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => backwardComposite(dy, saved[xs.length]!, saved.slice(0, xs.length) as tf.Tensor2D[], sides),
    };
  });
  return op(...xs) as tf.Tensor1D;
}

// all the gradients in one call (all the factors are trainable where this is
// used); the composite backward when the kernels were turned off between the passes
tf.registerGradient({
  kernelName: PEFT_ORTHOGONALITY,
  saveAllInputs: true,
  outputsToSave: [true],
  gradFunc: (dys: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], rawAttrs: tf.NamedAttrMap) => {
    const dn = Array.isArray(dys) ? dys[0]! : dys;
    const { sides } = rawAttrs as unknown as Attrs;
    const xs = saved.slice(0, sides.length) as tf.Tensor2D[];
    const norms = saved[sides.length]!;
    // made here, not in the functions the engine calls one by one (each in a scope of its own, which would free the others)
    let grads: tf.Tensor[];
    if (fusedKernelActive(PEFT_ORTHOGONALITY_GRAD)) {
      const inputs: tf.NamedTensorMap = { dn, norms, ...Object.fromEntries(xs.map((x, i) => [`x${i}`, x])) };
      grads = tf.engine().runKernel(PEFT_ORTHOGONALITY_GRAD, inputs, rawAttrs) as tf.Tensor[];
    } else {
      grads = backwardComposite(dn, norms, xs, sides.map((s) => (s ? 'cols' : 'rows')));
    }
    return Object.fromEntries(grads.map((g, i) => [String(i), () => g]));
  },
});
