// A linear layer with a low-rank update of some of its output groups, the
// arithmetic of LoRA (loralib's `Linear`, and `MergedLinear` for a fused qkv
// with only some of q, k, v adapted):
//
//   y = x W^T + bias + scaling * (per enabled group g, j-th enabled) (x A_j^T) B_j^T   (group g's columns)
//
//   x [N, in], W [out, in], bias [out], A [r*k, in], B [gw*k, r],
//   k enabled of G groups of gw = out / G columns; [true] is plain LoRA.
//
// Where the native kernels are registered (src/accel/native), this is one
// kernel each way (PeftLowRankLinear, PeftLowRankLinearGrad) instead of the
// ~6 forward and ~12 backward tfjs kernels of its composite form: every
// product reads and writes the operands in place, and t = x A^T is kept for
// the backward pass. Elsewhere (and as the reference the native kernels are
// tested against) it is the composite form below.
//
// The kernel's gradient is registered (not a tf.customGrad) so that the
// engine asks only for the gradients on the path to what is differentiated: a
// frozen W or bias costs nothing, nor does x's gradient in front of the first
// adapted layer. The gradients the layer is likely to be asked for (trainable
// A, B; an x computed from trainable variables) are made by one kernel call
// when the backward pass reaches the node; any other is made when asked.
import * as tf from '@tensorflow/tfjs';
import { pruneTape } from '../../accel/kernels/index.js';
import { PEFT_LOW_RANK_LINEAR, PEFT_LOW_RANK_LINEAR_GRAD, fusedKernelActive } from '../../accel/native/fused-names.js';
import { linear } from './functional.js';
import { isFrozen, mayNeedGradient, registerPathGradient } from './gradient-path.js';

/** The forward kernel's attrs, with which gradients to make at once (as predicted at the forward pass). */
interface Attrs {
  scaling: number;
  groups: number[];
  needX: boolean;
  needA: boolean;
  needB: boolean;
  needW: boolean;
  needBias: boolean;
}

type GradName = 'dx' | 'da' | 'db' | 'dw' | 'dbias';
const GRAD_NAMES: GradName[] = ['dx', 'da', 'db', 'dw', 'dbias'];

/**
 * `y = x W^T + bias + scaling * [(x A_j^T) B_j^T for the enabled groups]`, `[N, out]`.
 * `groups`: one flag per output group (`[true]`: plain LoRA), `a` `[r*k, in]`
 * and `b` `[gw*k, r]` hold the k enabled groups' factors in order.
 */
export function lowRankLinear(
  x: tf.Tensor2D,
  w: tf.Tensor2D,
  bias: tf.Tensor1D | undefined,
  a: tf.Tensor2D,
  b: tf.Tensor2D,
  scaling: number,
  groups: readonly boolean[],
): tf.Tensor2D {
  pruneTape();
  checkShapes(x, w, bias, a, b, groups);
  const native =
    x.size > 0 && [x, w, bias, a, b].every((t) => !t || t.dtype === 'float32') && fusedKernelActive(PEFT_LOW_RANK_LINEAR);
  if (!native) return lowRankLinearComposite(x, w, bias, a, b, scaling, groups);
  const attrs: Attrs = {
    scaling,
    groups: groups.map((g) => (g ? 1 : 0)),
    needX: mayNeedGradient(x),
    needA: !isFrozen(a),
    needB: !isFrozen(b),
    needW: !isFrozen(w),
    needBias: bias !== undefined && !isFrozen(bias),
  };
  // x first: the engine asks for the gradients in this order, so x's (when
  // asked at all) comes first; a, b, then the weight and bias, usually frozen
  const inputs: tf.NamedTensorMap = bias ? { x, a, b, w, bias } : { x, a, b, w };
  const [y, t] = tf.engine().runKernel(PEFT_LOW_RANK_LINEAR, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
  t!.dispose(); // the tape keeps its own reference when recording
  return y as tf.Tensor2D;
}

/**
 * Whether `lowRankLinear` runs as the native kernels on the active backend
 * (else it is the composite form): a layer whose own composite arithmetic
 * differs (another order of the scaling, say) may keep it where the kernels are off.
 */
export function lowRankLinearIsNative(): boolean {
  return fusedKernelActive(PEFT_LOW_RANK_LINEAR);
}

function checkShapes(x: tf.Tensor, w: tf.Tensor, bias: tf.Tensor | undefined, a: tf.Tensor, b: tf.Tensor, groups: readonly boolean[]): void {
  const k = groups.filter(Boolean).length;
  const bad = (why: string) => new Error(`lowRankLinear: ${why} (x ${x.shape}, w ${w.shape}, bias ${bias?.shape}, a ${a.shape}, b ${b.shape}, groups ${groups})`);
  if (x.rank !== 2 || w.rank !== 2 || a.rank !== 2 || b.rank !== 2) throw bad('x, w, a and b must be matrices');
  const [out, inF] = w.shape as [number, number];
  if (x.shape[1] !== inF) throw bad('x and w disagree on the input width');
  if (bias && (bias.rank !== 1 || bias.shape[0] !== out)) throw bad('bias must be [out]');
  if (groups.length < 1 || k < 1 || out % groups.length !== 0) throw bad('out must split into the groups, one enabled at least');
  const r = b.shape[1]!;
  const gw = out / groups.length;
  if (a.shape[0] !== r * k || a.shape[1] !== inF || b.shape[0] !== gw * k) throw bad('a must be [r*k, in] and b [gw*k, r]');
}

/** For each group: the index j among the enabled groups, or -1 when disabled. */
function slots(groups: readonly (boolean | number)[]): number[] {
  let j = 0;
  return groups.map((on) => (on ? j++ : -1));
}

/** The composite form (autodiff differentiates it): the tfjs ops LoRA's layers ran before the native kernel. */
export function lowRankLinearComposite(
  x: tf.Tensor2D,
  w: tf.Tensor2D,
  bias: tf.Tensor1D | undefined,
  a: tf.Tensor2D,
  b: tf.Tensor2D,
  scaling: number,
  groups: readonly boolean[],
): tf.Tensor2D {
  return tf.tidy(() => {
    let y = linear(x, w);
    if (bias) y = tf.add(y, bias);
    let update: tf.Tensor;
    if (groups.length === 1) {
      update = tf.mul(tf.matMul(tf.matMul(x, a, false, true), b, false, true), scaling);
    } else {
      const n = x.shape[0];
      const r = b.shape[1]!;
      const gw = w.shape[0] / groups.length;
      const h = tf.matMul(x, a, false, true); // [N, r*k]
      const parts = slots(groups).map((j) =>
        j < 0 ? tf.zeros([n, gw]) : tf.matMul(tf.slice(h, [0, j * r], [n, r]), tf.slice(b, [j * gw, 0], [gw, r]), false, true),
      );
      update = tf.mul(tf.concat(parts, 1), scaling);
    }
    return tf.add(y, update) as tf.Tensor2D;
  });
}

/**
 * The gradients `want` in tfjs ops, from what the forward kernel saved: used
 * when the native kernels were turned off between the forward and the backward pass.
 */
function backwardComposite(dy: tf.Tensor2D, x: tf.Tensor2D, w: tf.Tensor2D, a: tf.Tensor2D, b: tf.Tensor2D, t: tf.Tensor2D, attrs: Attrs, want: Set<GradName>): Map<GradName, tf.Tensor> {
  const n = x.shape[0];
  const r = b.shape[1]!;
  const gw = w.shape[0] / attrs.groups.length;
  const enabled = slots(attrs.groups).flatMap((j, g) => (j < 0 ? [] : [{ g, j }]));
  const dyOf = (g: number) => tf.slice(dy, [0, g * gw], [n, gw]);
  const out = new Map<GradName, tf.Tensor>();
  if (want.has('dx') || want.has('da')) {
    const u = tf.concat(enabled.map(({ g, j }) => tf.matMul(dyOf(g), tf.slice(b, [j * gw, 0], [gw, r]))), 1);
    if (want.has('dx')) out.set('dx', tf.add(tf.matMul(dy, w), tf.mul(tf.matMul(u, a), attrs.scaling)));
    if (want.has('da')) out.set('da', tf.mul(tf.matMul(u, x, true, false), attrs.scaling));
  }
  if (want.has('db')) {
    const parts = enabled.map(({ g, j }) => tf.matMul(dyOf(g), tf.slice(t, [0, j * r], [n, r]), true, false));
    out.set('db', tf.mul(tf.concat(parts, 0), attrs.scaling));
  }
  if (want.has('dw')) out.set('dw', tf.matMul(dy, x, true, false));
  if (want.has('dbias')) out.set('dbias', tf.sum(dy, 0));
  return out;
}

/** The gradients `want`: one native kernel call, or the composite form. */
function gradients(dy: tf.Tensor2D, saved: tf.Tensor2D[], attrs: Attrs, want: Set<GradName>): Map<GradName, tf.Tensor> {
  const [x, w, a, b, t] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
  if (want.size === 0) return new Map();
  if (!fusedKernelActive(PEFT_LOW_RANK_LINEAR_GRAD)) return backwardComposite(dy, x, w, a, b, t, attrs, want);
  const flags = Object.fromEntries(GRAD_NAMES.map((g) => [g, want.has(g)]));
  const grads = tf.engine().runKernel(PEFT_LOW_RANK_LINEAR_GRAD, { dy, x, w, a, b, t }, { scaling: attrs.scaling, groups: attrs.groups, ...flags }) as tf.Tensor[];
  const wanted = GRAD_NAMES.filter((g) => want.has(g));
  return new Map(wanted.map((g, i) => [g, grads[i]!]));
}

// the gradients predicted at the forward pass in one call, any other when asked
registerPathGradient<GradName, Attrs>(
  PEFT_LOW_RANK_LINEAR,
  ['x', 'w', 'a', 'b'],
  { x: 'dx', a: 'da', b: 'db', w: 'dw', bias: 'dbias' },
  (attrs) => [
    ...(attrs.needX ? (['dx'] as const) : []),
    ...(attrs.needA ? (['da'] as const) : []),
    ...(attrs.needB ? (['db'] as const) : []),
    ...(attrs.needW ? (['dw'] as const) : []),
    ...(attrs.needBias ? (['dbias'] as const) : []),
  ],
  gradients,
);
