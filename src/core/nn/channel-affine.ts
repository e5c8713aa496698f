// `channelAffine`: y = x * scale + shift over the last axis (scale and shift
// `[C]`), what batch norm in inference mode computes on channels-last data
// once its statistics are folded into a scale and a shift.
//
// Where the native kernels are registered it is one kernel (PeftChannelAffine:
// one pass over x instead of a Multiply and an Add, each a pass and a tensor);
// elsewhere, and as the reference it is tested against, the composite form.
// The kernel rounds after the product and after the sum as the two kernels do,
// and its gradient is the one autodiff makes of the composite form (the same
// tfjs ops in the same order), so either way the values and the gradients are
// the same to the bit.
import * as tf from '@tensorflow/tfjs';
import { pruneTape } from '../../accel/kernels/index.js';
import { PEFT_CHANNEL_AFFINE, fusedKernelActive } from '../../accel/native/fused-names.js';

/** `x * scale + shift`, scale and shift `[C]` over x's last axis `C`. */
export function channelAffine(x: tf.Tensor, scale: tf.Tensor, shift: tf.Tensor): tf.Tensor {
  pruneTape();
  const c = x.shape[x.rank - 1];
  if (scale.rank !== 1 || shift.rank !== 1 || scale.shape[0] !== c || shift.shape[0] !== c) {
    throw new Error(`channelAffine: scale ${scale.shape} and shift ${shift.shape} must be vectors over x's last axis (x ${x.shape})`);
  }
  const native = x.rank >= 1 && x.size > 0 && [x, scale, shift].every((t) => t.dtype === 'float32') && fusedKernelActive(PEFT_CHANNEL_AFFINE);
  if (!native) return channelAffineComposite(x, scale, shift);
  return tf.engine().runKernel(PEFT_CHANNEL_AFFINE, { x, scale, shift }) as tf.Tensor;
}

/** The composite form: a Multiply, then an Add (autodiff differentiates it). */
export function channelAffineComposite(x: tf.Tensor, scale: tf.Tensor, shift: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.add(tf.mul(x, scale), shift));
}

/** The axes a `[C]` operand is broadcast over: all of x's but the last. */
function leadingAxes(x: tf.Tensor): number[] {
  return Array.from({ length: x.rank - 1 }, (_, i) => i);
}

// The gradients autodiff makes of the composite form (tfjs's Add and Multiply
// gradients, in their order of operations); the engine calls only those on the
// path (a frozen batch norm asks for dx alone).
tf.registerGradient({
  kernelName: PEFT_CHANNEL_AFFINE,
  inputsToSave: ['x', 'scale'],
  gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
    const g = dy as tf.Tensor;
    const [x, scale] = saved as [tf.Tensor, tf.Tensor];
    return {
      x: () => tf.mul(g, scale),
      scale: () => tf.reshape(tf.sum(tf.mul(g, x), leadingAxes(x)), scale.shape),
      shift: () => tf.reshape(tf.sum(g, leadingAxes(x)), [x.shape[x.rank - 1]!]),
    };
  },
});
