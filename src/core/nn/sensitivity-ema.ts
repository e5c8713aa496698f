// The sensitivity averages of one parameter, as sensitivity-based pruning
// keeps them (AdaLoRA's importance, PLATON): from the parameter p and its
// gradient g,
//   s    = |p g|                         (the sensitivity of the loss to p)
//   ema' = ema b1 + s (1 - b1)
//   unc' = unc b2 + |s - ema'| (1 - b2)  (its uncertainty)
// with ema and unc zeros on the first update. A method's allocator calls this
// once per parameter and step, so where the native kernels are on it is one
// kernel (PeftSensitivityEma, bit-identical to the composite form below, which
// stays the fallback and the reference the kernel is tested against).
import * as tf from '@tensorflow/tfjs';
import { PEFT_SENSITIVITY_EMA, fusedKernelActive } from '../../accel/native/fused-names.js';

export interface SensitivityEma {
  /** The smoothed sensitivity (AdaLoRA's `exp_avg_ipt`). */
  ema: tf.Tensor;
  /** The smoothed uncertainty (AdaLoRA's `exp_avg_unc`). */
  unc: tf.Tensor;
}

/**
 * One update of the averages: new tensors (the caller disposes them); `ema0`,
 * `unc0` (the previous averages, undefined on the first update) are not
 * disposed.
 */
export function sensitivityEma(p: tf.Tensor, g: tf.Tensor, ema0: tf.Tensor | undefined, unc0: tf.Tensor | undefined, beta1: number, beta2: number): SensitivityEma {
  if (fusedKernelActive(PEFT_SENSITIVITY_EMA) && fusable(p, [g, ema0, unc0])) {
    const inputs: tf.NamedTensorMap = { p, g };
    if (ema0) inputs.ema = ema0;
    if (unc0) inputs.unc = unc0;
    const [ema, unc] = tf.engine().runKernel(PEFT_SENSITIVITY_EMA, inputs, { beta1, beta2 }) as tf.Tensor[];
    return { ema: ema!, unc: unc! };
  }
  return tf.tidy(() => {
    const s = tf.abs(tf.mul(p, g));
    const e0 = ema0 ?? tf.zerosLike(s);
    const u0 = unc0 ?? tf.zerosLike(s);
    const ema = tf.add(tf.mul(e0, beta1), tf.mul(s, 1 - beta1));
    const unc = tf.add(tf.mul(u0, beta2), tf.mul(tf.abs(tf.sub(s, ema)), 1 - beta2));
    return { ema, unc };
  });
}

/** Whether PeftSensitivityEma takes these: float32, one shape (else the composite form, which also broadcasts). */
function fusable(p: tf.Tensor, others: (tf.Tensor | undefined)[]): boolean {
  const same = (t: tf.Tensor) => t.dtype === 'float32' && t.shape.length === p.shape.length && t.shape.every((d, i) => d === p.shape[i]);
  return same(p) && others.every((t) => !t || same(t));
}
