// AdaLoRA's importance averages of one parameter (its RankAllocator, in
// plugins/method-adalora, runs this for every A, E and B of every SVD layer on
// every step while importance is updated): from the parameter p and its
// gradient g,
//   ipt  = |p g|
//   ema' = ema b1 + ipt (1 - b1)
//   unc' = unc b2 + |ipt - ema'| (1 - b2)
// with ema and unc zeros on the first update. Where the native kernels are on
// it is one kernel (PeftImportanceEma, bit-identical to the composite form
// below, which stays the fallback and the reference).
import * as tf from '@tensorflow/tfjs';
import { PEFT_IMPORTANCE_EMA, fusedKernelActive } from '../../accel/native/fused-names.js';

export interface ImportanceEma {
  /** The smoothed importance (AdaLoRA's `exp_avg_ipt`). */
  ema: tf.Tensor;
  /** The smoothed uncertainty (AdaLoRA's `exp_avg_unc`). */
  unc: tf.Tensor;
}

/**
 * One update of the importance averages: new tensors (the caller disposes
 * them); `ema0`, `unc0` (the previous averages, undefined on the first update)
 * are not disposed.
 */
export function importanceEma(p: tf.Tensor, g: tf.Tensor, ema0: tf.Tensor | undefined, unc0: tf.Tensor | undefined, beta1: number, beta2: number): ImportanceEma {
  if (fusedKernelActive(PEFT_IMPORTANCE_EMA) && fusable(p, [g, ema0, unc0])) {
    const inputs: tf.NamedTensorMap = { p, g };
    if (ema0) inputs.ema = ema0;
    if (unc0) inputs.unc = unc0;
    const [ema, unc] = tf.engine().runKernel(PEFT_IMPORTANCE_EMA, inputs, { beta1, beta2 }) as tf.Tensor[];
    return { ema: ema!, unc: unc! };
  }
  return tf.tidy(() => {
    const ipt = tf.abs(tf.mul(p, g));
    const e0 = ema0 ?? tf.zerosLike(ipt);
    const u0 = unc0 ?? tf.zerosLike(ipt);
    const ema = tf.add(tf.mul(e0, beta1), tf.mul(ipt, 1 - beta1));
    const unc = tf.add(tf.mul(u0, beta2), tf.mul(tf.abs(tf.sub(ipt, ema)), 1 - beta2));
    return { ema, unc };
  });
}

/** Whether PeftImportanceEma takes these: float32, one shape (else the composite form, which also broadcasts). */
function fusable(p: tf.Tensor, others: (tf.Tensor | undefined)[]): boolean {
  const same = (t: tf.Tensor) => t.dtype === 'float32' && t.shape.length === p.shape.length && t.shape.every((d, i) => d === p.shape[i]);
  return same(p) && others.every((t) => !t || same(t));
}
