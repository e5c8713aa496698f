// Stateless tensor functions shared by the layers. Keeping each in one place
// lets the performance work swap in faster forms without touching the models.
//
// - `linear` runs on the fast matrix product on wasm (`fast-matmul.ts`): the
//   frozen weight's transpose is kept, and the gradients are fast 2-D
//   products too.
// - `geluErf`, `geluTanh` and `layerNorm` compute exactly what their formulas
//   say, with hand-written gradients: a few fused elementwise passes instead of
//   the long chain autodiff records (and fewer tensors kept for the backward).
// - `geluErf` and `layerNorm` run as one native kernel each way (forward and
//   gradient, src/core/native/fused-kernels.ts) where the OpenBLAS addon's
//   kernels are registered for the active backend; the composite forms below
//   are the fallback, and the reference the native ones are tested against.
import * as tf from '@tensorflow/tfjs';
import { pruneTape } from '../../accel/kernels/index.js';
import { PEFT_GELU, PEFT_GELU_GRAD, PEFT_LAYER_NORM, PEFT_LAYER_NORM_GRAD, fusedKernelActive } from '../../accel/native/fused-names.js';
import { fastMatMulActive, matMul } from './fast-matmul.js';

export { fastMatMulActive, matMul } from './fast-matmul.js';
export { attention, type AttentionOptions } from './attention.js';
export { packedAttention, packedAttentionComposite, type PackedAttentionOptions } from './packed-attention.js';

/** `y = x W^T + b` for `x [..., in]`, `W [out, in]` (PyTorch's layout). */
export function linear(x: tf.Tensor, weight: tf.Tensor, bias?: tf.Tensor): tf.Tensor {
  pruneTape();
  return tf.tidy(() => {
    const inF = weight.shape[1]!;
    const outF = weight.shape[0]!;
    const lead = x.shape.slice(0, -1);
    const x2 = x.rank === 2 ? x : tf.reshape(x, [-1, inF]);
    // `linear(x, W, b)` and `linear(x, W) + b` agree to the bit, as adapters that
    // take over a layer rely on: the fast product adds a fused bias after the
    // product (one addition an element, as tf.add), elsewhere it is added apart
    let y: tf.Tensor;
    if (fastMatMulActive()) {
      y = matMul(x2, weight, false, true, bias);
    } else {
      y = tf.matMul(x2, weight, false, true);
      if (bias) y = tf.add(y, bias);
    }
    return x.rank === 2 ? y : tf.reshape(y, [...lead, outF]);
  });
}

type GradResult = { value: tf.Tensor; gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor | tf.Tensor[] };

/** tf.customGrad for a one-input function. */
function customGrad1(f: (x: tf.Tensor, save: tf.GradSaveFunc) => GradResult): (x: tf.Tensor) => tf.Tensor {
  return tf.customGrad(f as unknown as Parameters<typeof tf.customGrad>[0]) as (x: tf.Tensor) => tf.Tensor;
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/** d/dx of exact GELU times dy, given erf(x / sqrt 2) `e`: dy (Phi(x) + x phi(x)). */
function geluErfGrad(dy: tf.Tensor, x: tf.Tensor, e: tf.Tensor): tf.Tensor {
  // Phi = 0.5 (1 + erf(x / sqrt 2)), phi = exp(-x^2 / 2) / sqrt(2 pi)
  const cdf = tf.mul(tf.add(e, 1), 0.5);
  const xpdf = tf.mul(tf.mul(x, tf.exp(tf.mul(tf.square(x), -0.5))), INV_SQRT_2PI);
  return tf.mul(dy, tf.add(cdf, xpdf));
}

const geluErfOp = customGrad1((x, save) => {
  // 0.5 x (1 + erf(x / sqrt 2)); erf's value is kept for the backward pass
  const e = tf.erf(tf.mul(x, Math.SQRT1_2));
  const value = tf.mul(tf.mul(x, 0.5), tf.add(e, 1));
  save([x, e]);
  return {
    value,
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [xs, es] = saved as [tf.Tensor, tf.Tensor];
      return geluErfGrad(dy, xs, es);
    },
  };
});

/** The same on the native kernels: only x is kept, the gradient recomputes erf in its one pass. */
const geluErfNativeOp = customGrad1((x, save) => {
  save([x]);
  return {
    value: tf.engine().runKernel(PEFT_GELU, { x }) as tf.Tensor,
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const xs = saved[0]!;
      if (fusedKernelActive(PEFT_GELU_GRAD)) return tf.engine().runKernel(PEFT_GELU_GRAD, { x: xs, dy }) as tf.Tensor;
      // the native kernels were turned off between the forward and the backward pass
      return geluErfGrad(dy, xs, tf.erf(tf.mul(xs, Math.SQRT1_2)));
    },
  };
});

/** Exact GELU: `0.5 x (1 + erf(x / sqrt 2))`. */
export function geluErf(x: tf.Tensor): tf.Tensor {
  pruneTape();
  return x.dtype === 'float32' && fusedKernelActive(PEFT_GELU) ? geluErfNativeOp(x) : geluErfOp(x);
}

const geluTanhOp = customGrad1((x, save) => {
  save([x]);
  const inner = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), SQRT_2_OVER_PI);
  const value = tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
  return {
    value,
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const xs = saved[0]!;
      const x2 = tf.square(xs);
      const t = tf.tanh(tf.mul(tf.mul(xs, tf.add(tf.mul(x2, 0.044715), 1)), SQRT_2_OVER_PI));
      // 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
      const dInner = tf.mul(tf.add(tf.mul(x2, 3 * 0.044715), 1), SQRT_2_OVER_PI);
      const grad = tf.add(tf.mul(tf.add(t, 1), 0.5), tf.mul(tf.mul(tf.mul(xs, 0.5), tf.sub(1, tf.square(t))), dInner));
      return tf.mul(dy, grad);
    },
  };
});

/** GELU's tanh approximation. */
export function geluTanh(x: tf.Tensor): tf.Tensor {
  pruneTape();
  return geluTanhOp(x);
}

/** The normalised x and 1/std over the last axis (biased variance). */
function normalise(x: tf.Tensor, eps: number): { xhat: tf.Tensor; rstd: tf.Tensor } {
  const axis = x.rank - 1;
  const mean = tf.mean(x, axis, true);
  const xc = tf.sub(x, mean);
  const variance = tf.mean(tf.square(xc), axis, true);
  const rstd = tf.rsqrt(tf.add(variance, eps));
  return { xhat: tf.mul(xc, rstd), rstd };
}

/** dL/dx of `xhat = normalise(x)` given dL/dxhat `g`. */
function normaliseGrad(g: tf.Tensor, xhat: tf.Tensor, rstd: tf.Tensor): tf.Tensor {
  const axis = g.rank - 1;
  const meanG = tf.mean(g, axis, true);
  const meanGx = tf.mean(tf.mul(g, xhat), axis, true);
  return tf.mul(tf.sub(tf.sub(g, meanG), tf.mul(xhat, meanGx)), rstd);
}

function leadAxes(x: tf.Tensor): number[] {
  return x.shape.slice(0, -1).map((_, i) => i);
}

const layerNormCache = new Map<string, (...args: tf.Tensor[]) => tf.Tensor>();

/** A custom-gradient layer norm for one (eps, affine) combination. */
function layerNormOp(eps: number, hasWeight: boolean, hasBias: boolean): (...args: tf.Tensor[]) => tf.Tensor {
  const key = `${eps}|${hasWeight}|${hasBias}`;
  let op = layerNormCache.get(key);
  if (op) return op;
  op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args.pop() as tf.GradSaveFunc;
    const [x, w, b] = [args[0] as tf.Tensor, hasWeight ? (args[1] as tf.Tensor) : undefined, hasBias ? (args[hasWeight ? 2 : 1] as tf.Tensor) : undefined];
    const { xhat, rstd } = normalise(x, eps);
    let value = xhat;
    if (w) value = tf.mul(value, w);
    if (b) value = tf.add(value, b);
    save(w ? [xhat, rstd, w] : [xhat, rstd]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xh, rs, ws] = saved as [tf.Tensor, tf.Tensor, tf.Tensor | undefined];
        const g = ws ? tf.mul(dy, ws) : dy;
        const grads: tf.Tensor[] = [normaliseGrad(g, xh!, rs!)];
        if (hasWeight) grads.push(tf.sum(tf.mul(dy, xh!), leadAxes(dy)));
        if (hasBias) grads.push(tf.sum(dy, leadAxes(dy)));
        return grads;
      },
    };
  }) as unknown as (...args: tf.Tensor[]) => tf.Tensor;
  layerNormCache.set(key, op);
  return op;
}

/** The layer norm on the native kernels: keeps x, each row's mean and rstd (and the weight). */
function layerNormNativeOp(eps: number, hasWeight: boolean, hasBias: boolean): (...args: tf.Tensor[]) => tf.Tensor {
  const key = `native|${eps}|${hasWeight}|${hasBias}`;
  let op = layerNormCache.get(key);
  if (op) return op;
  op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args.pop() as tf.GradSaveFunc;
    const [x, w, b] = [args[0] as tf.Tensor, hasWeight ? (args[1] as tf.Tensor) : undefined, hasBias ? (args[hasWeight ? 2 : 1] as tf.Tensor) : undefined];
    const inputs: tf.NamedTensorMap = { x, ...(w ? { weight: w } : {}), ...(b ? { bias: b } : {}) };
    const [value, mean, rstd] = tf.engine().runKernel(PEFT_LAYER_NORM, inputs, { eps }) as tf.Tensor[];
    save(w ? [x, mean!, rstd!, w] : [x, mean!, rstd!]);
    return {
      value: value!,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, ms, rs, ws] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor | undefined];
        if (fusedKernelActive(PEFT_LAYER_NORM_GRAD)) {
          const gradInputs: tf.NamedTensorMap = { dy, x: xs, mean: ms, rstd: rs, ...(ws ? { weight: ws } : {}) };
          return tf.engine().runKernel(PEFT_LAYER_NORM_GRAD, gradInputs, { biasGrad: hasBias }) as tf.Tensor[];
        }
        // the native kernels were turned off between the forward and the backward pass
        const rowShape = [...xs.shape.slice(0, -1), 1];
        const xh = tf.mul(tf.sub(xs, tf.reshape(ms, rowShape)), tf.reshape(rs, rowShape));
        const g = ws ? tf.mul(dy, ws) : dy;
        const grads: tf.Tensor[] = [normaliseGrad(g, xh, tf.reshape(rs, rowShape))];
        if (hasWeight) grads.push(tf.sum(tf.mul(dy, xh), leadAxes(dy)));
        if (hasBias) grads.push(tf.sum(dy, leadAxes(dy)));
        return grads;
      },
    };
  }) as unknown as (...args: tf.Tensor[]) => tf.Tensor;
  layerNormCache.set(key, op);
  return op;
}

/** Normalises over the last axis: `(x - mean) / sqrt(var + eps) * w + b` (biased variance). */
export function layerNorm(x: tf.Tensor, weight: tf.Tensor | undefined, bias: tf.Tensor | undefined, eps: number): tf.Tensor {
  pruneTape();
  const ok = (t: tf.Tensor | undefined) => !t || (t.rank === 1 && t.shape[0] === x.shape[x.rank - 1]);
  if (x.dtype !== 'float32' || !ok(weight) || !ok(bias)) {
    // unusual shapes: the plain form, differentiated by autodiff
    return tf.tidy(() => {
      let y = normalise(x, eps).xhat;
      if (weight) y = tf.mul(y, weight);
      if (bias) y = tf.add(y, bias);
      return y;
    });
  }
  const args = [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])];
  const native = x.size > 0 && args.every((t) => t.dtype === 'float32') && fusedKernelActive(PEFT_LAYER_NORM);
  return (native ? layerNormNativeOp : layerNormOp)(eps, Boolean(weight), Boolean(bias))(...args);
}
