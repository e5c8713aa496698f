// Names of the fused kernels the native addon registers (beside the tfjs
// kernels it replaces), and whether one is registered for the active backend.
// Kept apart from the kernels themselves so that the layers (src/core/nn) can
// ask without loading the addon.
import * as tf from '@tensorflow/tfjs';

/** Exact GELU: `{x}` → y. */
export const PEFT_GELU = 'PeftGelu';
/** GELU's gradient from x: `{x, dy}` → dx. */
export const PEFT_GELU_GRAD = 'PeftGeluGrad';
/** Layer norm over the last axis: `{x, weight?, bias?}`, attrs `{eps}` → [y, mean, rstd] (mean and rstd per row). */
export const PEFT_LAYER_NORM = 'PeftLayerNorm';
/** Its gradient: `{dy, x, mean, rstd, weight?}`, attrs `{biasGrad}` → [dx, dweight (with a weight), dbias (biasGrad)]. */
export const PEFT_LAYER_NORM_GRAD = 'PeftLayerNormGrad';
/**
 * A per-channel affine map over the last axis (core `channelAffine`: frozen batch norm):
 * `{x, scale, shift}` (scale, shift `[C]`) → y = x * scale + shift, a Multiply then an Add to the bit.
 */
export const PEFT_CHANNEL_AFFINE = 'PeftChannelAffine';
/** Softmax's gradient over the last axis from its output: `{y, dy}` → dx = dy y - sum(dy y) y. */
export const PEFT_SOFTMAX_GRAD = 'PeftSoftmaxGrad';

/**
 * Multi-head self-attention over packed qkv `[nb, N, 3C]` (core `packedAttention`):
 * `{qkv, rh?, rw?}` (decomposed rel-pos tables `[qh, kh, hd]`, `[qw, kw, hd]`),
 * attrs `{heads, scale, scaleOnQuery, grid: [qh, qw]}` → [out `[nb, N, C]`, probs `[nb, heads, N, N]`].
 */
export const PEFT_ATTENTION = 'PeftAttention';
/** Its gradient: `{dout, qkv, probs, rh?, rw?}`, same attrs → [dqkv, drh, drw] (the last two with rh, rw). */
export const PEFT_ATTENTION_GRAD = 'PeftAttentionGrad';

/**
 * One Adam update of a parameter (src/app/train/adam.ts), bit-identical to its composite form:
 * `{p, g, m, v}`, attrs `{lr, beta1, beta2, eps, step}` → [p', m', v'].
 */
export const PEFT_ADAM = 'PeftAdam';
/**
 * Adam's update of many parameters in one call (PyTorch's multi-tensor Adam), each as PeftAdam does it:
 * `{p0, g0, m0, v0, p1, ...}`, attrs `{lr, beta1, beta2, eps, step, count}` → [p0', m0', v0', p1', ...].
 */
export const PEFT_ADAM_MULTI = 'PeftAdamMulti';

/**
 * The sensitivity averages of one parameter (core `sensitivityEma`, src/core/nn/sensitivity-ema.ts): s = |p g|,
 * ema' = b1 ema + (1 - b1) s, unc' = b2 unc + (1 - b2) |s - ema'|, bit-identical to its composite form:
 * `{p, g, ema?, unc?}` (absent: the first update's zeros), attrs `{beta1, beta2}` → [ema', unc'].
 */
export const PEFT_SENSITIVITY_EMA = 'PeftSensitivityEma';

/**
 * A linear layer with a low-rank update of its enabled output groups (core `lowRankLinear`, LoRA):
 * `{x, w, bias?, a, b}`, attrs `{scaling, groups: number[] (1 enabled, 0 not)}` → [y `[N, out]`, t = x A^T `[N, r*k]`].
 */
export const PEFT_LOW_RANK_LINEAR = 'PeftLowRankLinear';
/**
 * The same with a scale per rank (AdaLoRA's singular values, A*E without forming it): `{x, w, bias?, a, b, e}`,
 * e `[r*k]` or `[r*k, 1]`, y = x W^T + bias + scaling ((x A_j^T) e_j) B_j^T; a kernel of its own because its
 * gradient saves e as well.
 */
export const PEFT_LOW_RANK_LINEAR_SCALED = 'PeftLowRankLinearScaled';
/** Their gradient: `{dy, x, w, a, b, e?, t}`, attrs as the forward's plus `{dx, da, db, dw, dbias, de}` (booleans) → the gradients asked, in that order. */
export const PEFT_LOW_RANK_LINEAR_GRAD = 'PeftLowRankLinearGrad';

/**
 * A bottleneck MLP (core `bottleneckMlp`, Medical-SAM-Adapter's Adapter): `{x, w1, b1, w2, b2}`, attrs `{skip}`
 * → [y = gelu(x W1^T + b1) W2^T + b2 (+ x) `[N, out]`, pre = x W1^T + b1 `[N, hid]`].
 */
export const PEFT_BOTTLENECK_MLP = 'PeftBottleneckMlp';
/** Its gradient: `{dy, x, w1, w2, pre}`, attrs `{skip, dx, dw1, db1, dw2, db2}` (booleans) → the gradients asked, in that order. */
export const PEFT_BOTTLENECK_MLP_GRAD = 'PeftBottleneckMlpGrad';

/**
 * The distance of factors from orthonormality (core `orthogonalityNorms`, AdaLoRA's regulariser): `[x0, x1, ...]`
 * (an array of matrices, as Concat's inputs), attrs `{sides: number[]}` (1: x^T x, 0: x x^T) → [norms `[count]`], norm_i = ||Gram(x_i) - I||_F.
 */
export const PEFT_ORTHOGONALITY = 'PeftOrthogonality';
/** Its gradient: `{dn, norms, x0, x1, ...}`, the same attrs → [dx0, dx1, ...] (0 where a norm is 0). */
export const PEFT_ORTHOGONALITY_GRAD = 'PeftOrthogonalityGrad';

export const FUSED_KERNEL_NAMES = [PEFT_GELU, PEFT_GELU_GRAD, PEFT_CHANNEL_AFFINE, PEFT_LAYER_NORM, PEFT_LAYER_NORM_GRAD, PEFT_SOFTMAX_GRAD, PEFT_ATTENTION, PEFT_ATTENTION_GRAD, PEFT_ADAM, PEFT_ADAM_MULTI, PEFT_SENSITIVITY_EMA, PEFT_LOW_RANK_LINEAR, PEFT_LOW_RANK_LINEAR_SCALED, PEFT_LOW_RANK_LINEAR_GRAD, PEFT_ORTHOGONALITY, PEFT_ORTHOGONALITY_GRAD, PEFT_BOTTLENECK_MLP, PEFT_BOTTLENECK_MLP_GRAD] as const;

/** Whether `name` is registered for the active backend (the native kernels are on there). */
export function fusedKernelActive(name: string): boolean {
  const backend = tf.getBackend();
  return backend !== undefined && tf.getKernel(name, backend) !== undefined;
}
