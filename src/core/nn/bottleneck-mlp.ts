// A bottleneck MLP with exact (erf) GELU, the arithmetic of Medical-SAM-Adapter's
// `Adapter` (D_fc2(GELU(D_fc1(x))), with or without its skip), its output
// scaled (the reference's Block adds 0.5 x its MLP adapter's output):
//
//   pre = x W1^T + b1,   y = scale (gelu(pre) W2^T + b2) (+ x with skip)
//
//   x [N, in], W1 [hid, in], b1 [hid], W2 [out, hid], b2 [out] (out = in with skip).
//
// Where the native kernels are registered (src/accel/native), this is one
// kernel each way (PeftBottleneckMlp, PeftBottleneckMlpGrad) instead of the ~6
// forward and ~12 backward tfjs kernels of its composite form: the products
// read and write the operands in place, the biases and the skip are written
// where the products accumulate, and only pre is kept for the backward (which
// recomputes gelu(pre) from it); the scale rides on the second product's alpha
// and on b2 (and on the backward's products), not a pass of its own each way.
// GELU is the addon's, so the values are those of
// core `geluErf`'s native kernel. Elsewhere (and as the reference the native
// kernels are tested against) it is the composite form below.
//
// The kernel's gradient is registered (not a tf.customGrad) so that the engine
// asks only for the gradients on the path to what is differentiated: frozen
// weights cost nothing, nor does x's gradient in front of the first trainable
// layer. The gradients the layer is likely to be asked for (as predicted at the
// forward pass) are made by one kernel call when the backward pass reaches the
// node; any other is made when asked.
import * as tf from '@tensorflow/tfjs';
import { pruneTape } from '../../accel/kernels/index.js';
import { PEFT_BOTTLENECK_MLP, PEFT_BOTTLENECK_MLP_GRAD, fusedKernelActive } from '../../accel/native/fused-names.js';
import { geluErf, linear } from './functional.js';
import { isFrozen, mayNeedGradient, registerPathGradient } from './gradient-path.js';

/** The forward kernel's attrs, with which gradients to make at once. */
interface Attrs {
  skip: boolean;
  scale: number;
  needX: boolean;
  needW1: boolean;
  needB1: boolean;
  needW2: boolean;
  needB2: boolean;
}

type GradName = 'dx' | 'dw1' | 'db1' | 'dw2' | 'db2';
const GRAD_NAMES: GradName[] = ['dx', 'dw1', 'db1', 'dw2', 'db2'];

/** `y = scale (gelu(x W1^T + b1) W2^T + b2) (+ x when skip)`, `[N, out]`, GELU exact (erf). */
export function bottleneckMlp(x: tf.Tensor2D, w1: tf.Tensor2D, b1: tf.Tensor1D, w2: tf.Tensor2D, b2: tf.Tensor1D, skip: boolean, scale = 1): tf.Tensor2D {
  pruneTape();
  checkShapes(x, w1, b1, w2, b2, skip);
  if (!Number.isFinite(scale)) throw new Error(`bottleneckMlp: the scale must be a finite number, got ${scale}`);
  const native = x.size > 0 && [x, w1, b1, w2, b2].every((t) => t.dtype === 'float32') && fusedKernelActive(PEFT_BOTTLENECK_MLP);
  if (!native) return bottleneckMlpComposite(x, w1, b1, w2, b2, skip, scale);
  const attrs: Attrs = {
    skip,
    scale,
    needX: mayNeedGradient(x),
    needW1: !isFrozen(w1),
    needB1: !isFrozen(b1),
    needW2: !isFrozen(w2),
    needB2: !isFrozen(b2),
  };
  // x first: the engine asks for the gradients in the inputs' order
  const [y, pre] = tf.engine().runKernel(PEFT_BOTTLENECK_MLP, { x, w1, b1, w2, b2 }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
  pre!.dispose(); // the tape keeps its own reference when recording
  return y as tf.Tensor2D;
}

/** Whether `bottleneckMlp` runs as the native kernels on the active backend (else it is the composite form). */
export function bottleneckMlpIsNative(): boolean {
  return fusedKernelActive(PEFT_BOTTLENECK_MLP);
}

function checkShapes(x: tf.Tensor, w1: tf.Tensor, b1: tf.Tensor, w2: tf.Tensor, b2: tf.Tensor, skip: boolean): void {
  const bad = (why: string) => new Error(`bottleneckMlp: ${why} (x ${x.shape}, w1 ${w1.shape}, b1 ${b1.shape}, w2 ${w2.shape}, b2 ${b2.shape}, skip ${skip})`);
  if (x.rank !== 2 || w1.rank !== 2 || w2.rank !== 2) throw bad('x, w1 and w2 must be matrices');
  const [hid, inF] = w1.shape as [number, number];
  const out = w2.shape[0]!;
  if (x.shape[1] !== inF || w2.shape[1] !== hid) throw bad('x, w1 and w2 do not chain');
  if (b1.rank !== 1 || b1.shape[0] !== hid || b2.rank !== 1 || b2.shape[0] !== out) throw bad('b1 must be [hid] and b2 [out]');
  if (skip && out !== inF) throw bad('the skip needs out = in');
}

/** The composite form (autodiff differentiates it): the tfjs ops the Adapter ran before the native kernel. */
export function bottleneckMlpComposite(x: tf.Tensor2D, w1: tf.Tensor2D, b1: tf.Tensor1D, w2: tf.Tensor2D, b2: tf.Tensor1D, skip: boolean, scale = 1): tf.Tensor2D {
  return tf.tidy(() => {
    const h0 = linear(geluErf(linear(x, w1, b1)), w2, b2);
    const h = scale === 1 ? h0 : tf.mul(h0, scale);
    return (skip ? tf.add(x, h) : h) as tf.Tensor2D;
  });
}

/** d gelu(pre) / d pre times dh, in tfjs ops (geluErf's own composite gradient). */
function geluGrad(dh: tf.Tensor, pre: tf.Tensor): tf.Tensor {
  const cdf = tf.mul(tf.add(tf.erf(tf.mul(pre, Math.SQRT1_2)), 1), 0.5);
  const xpdf = tf.mul(tf.mul(pre, tf.exp(tf.mul(tf.square(pre), -0.5))), 1 / Math.sqrt(2 * Math.PI));
  return tf.mul(dh, tf.add(cdf, xpdf));
}

/**
 * The gradients `want` in tfjs ops, from what the forward kernel saved: used
 * when the native kernels were turned off between the forward and the backward pass.
 */
function backwardComposite(dy: tf.Tensor2D, x: tf.Tensor2D, w1: tf.Tensor2D, w2: tf.Tensor2D, pre: tf.Tensor2D, skip: boolean, scale: number, want: Set<GradName>): Map<GradName, tf.Tensor> {
  const out = new Map<GradName, tf.Tensor>();
  const dyRaw = dy;
  // the gradient of the scaled branch (the skip's is dy itself)
  if (scale !== 1) dy = tf.mul(dy, scale);
  if (want.has('dw2')) out.set('dw2', tf.matMul(dy, geluErf(pre), true, false));
  if (want.has('db2')) out.set('db2', tf.sum(dy, 0));
  if (want.has('dx') || want.has('dw1') || want.has('db1')) {
    const dpre = geluGrad(tf.matMul(dy, w2), pre);
    if (want.has('dw1')) out.set('dw1', tf.matMul(dpre, x, true, false));
    if (want.has('db1')) out.set('db1', tf.sum(dpre, 0));
    if (want.has('dx')) {
      const dx = tf.matMul(dpre, w1);
      out.set('dx', skip ? tf.add(dyRaw, dx) : dx);
    }
  }
  return out;
}

/** The gradients `want`: one native kernel call, or the composite form. */
function gradients(dy: tf.Tensor2D, saved: tf.Tensor2D[], skip: boolean, scale: number, want: Set<GradName>): Map<GradName, tf.Tensor> {
  const [x, w1, w2, pre] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
  if (want.size === 0) return new Map();
  if (!fusedKernelActive(PEFT_BOTTLENECK_MLP_GRAD)) return backwardComposite(dy, x, w1, w2, pre, skip, scale, want);
  const flags = Object.fromEntries(GRAD_NAMES.map((g) => [g, want.has(g)]));
  const grads = tf.engine().runKernel(PEFT_BOTTLENECK_MLP_GRAD, { dy, x, w1, w2, pre }, { skip, scale, ...flags }) as tf.Tensor[];
  const wanted = GRAD_NAMES.filter((g) => want.has(g));
  return new Map(wanted.map((g, i) => [g, grads[i]!]));
}

// the gradients predicted at the forward pass in one call, any other when asked
registerPathGradient<GradName, Attrs>(
  PEFT_BOTTLENECK_MLP,
  ['x', 'w1', 'w2'],
  { x: 'dx', w1: 'dw1', b1: 'db1', w2: 'dw2', b2: 'db2' },
  (attrs) => [
    ...(attrs.needX ? (['dx'] as const) : []),
    ...(attrs.needW1 ? (['dw1'] as const) : []),
    ...(attrs.needB1 ? (['db1'] as const) : []),
    ...(attrs.needW2 ? (['dw2'] as const) : []),
    ...(attrs.needB2 ? (['db2'] as const) : []),
  ],
  (dy, saved, attrs, want) => gradients(dy, saved, attrs.skip, attrs.scale ?? 1, want),
);
