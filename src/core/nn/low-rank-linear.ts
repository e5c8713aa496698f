// A linear layer with a low-rank update of some of its output groups, the
// arithmetic of LoRA (loralib's `Linear`, and `MergedLinear` for a fused qkv
// with only some of q, k, v adapted):
//
//   y = x W^T + bias + scaling * (per enabled group g, j-th enabled) ((x A_j^T) e_j) B_j^T   (group g's columns)
//
//   x [N, in], W [out, in], bias [out], A [r*k, in], B [gw*k, r],
//   k enabled of G groups of gw = out / G columns; [true] is plain LoRA;
//   e [r*k] (or [r*k, 1]) an optional scale per rank, 1 when absent: AdaLoRA's
//   singular values, (A*E) without forming the product (nor its gradient).
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
import { PEFT_LOW_RANK_LINEAR, PEFT_LOW_RANK_LINEAR_GRAD, PEFT_LOW_RANK_LINEAR_SCALED, fusedKernelActive } from '../../accel/native/fused-names.js';
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
  needE: boolean;
}

type GradName = 'dx' | 'da' | 'db' | 'dw' | 'dbias' | 'de';
const GRAD_NAMES: GradName[] = ['dx', 'da', 'db', 'dw', 'dbias', 'de'];

/**
 * `y = x W^T + bias + scaling * [((x A_j^T) e_j) B_j^T for the enabled groups]`, `[N, out]`.
 * `groups`: one flag per output group (`[true]`: plain LoRA), `a` `[r*k, in]`
 * and `b` `[gw*k, r]` hold the k enabled groups' factors in order; `e`
 * `[r*k]` or `[r*k, 1]` (optional) scales each rank (row of `a`).
 */
export function lowRankLinear(
  x: tf.Tensor2D,
  w: tf.Tensor2D,
  bias: tf.Tensor1D | undefined,
  a: tf.Tensor2D,
  b: tf.Tensor2D,
  scaling: number,
  groups: readonly boolean[],
  e?: tf.Tensor,
): tf.Tensor2D {
  pruneTape();
  checkShapes(x, w, bias, a, b, groups, e);
  const kernel = e ? PEFT_LOW_RANK_LINEAR_SCALED : PEFT_LOW_RANK_LINEAR;
  const native = x.size > 0 && [x, w, bias, a, b, e].every((t) => !t || t.dtype === 'float32') && fusedKernelActive(kernel);
  if (!native) return lowRankLinearComposite(x, w, bias, a, b, scaling, groups, e);
  const attrs: Attrs = {
    scaling,
    groups: groups.map((g) => (g ? 1 : 0)),
    needX: mayNeedGradient(x),
    needA: !isFrozen(a),
    needB: !isFrozen(b),
    needW: !isFrozen(w),
    needBias: bias !== undefined && !isFrozen(bias),
    needE: e !== undefined && !isFrozen(e),
  };
  // x first: the engine asks for the gradients in this order, so x's (when
  // asked at all) comes first; a, b, then the weight and bias, usually frozen
  const inputs: tf.NamedTensorMap = bias ? { x, a, b, w, bias } : { x, a, b, w };
  if (e) inputs.e = e;
  const [y, t] = tf.engine().runKernel(kernel, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
  t!.dispose(); // the tape keeps its own reference when recording
  return y as tf.Tensor2D;
}

/**
 * Whether `lowRankLinear` runs as the native kernels on the active backend
 * (else it is the composite form): a layer whose own composite arithmetic
 * differs (another order of the scaling, say) may keep it where the kernels are off.
 */
export function lowRankLinearIsNative(): boolean {
  return fusedKernelActive(PEFT_LOW_RANK_LINEAR) && fusedKernelActive(PEFT_LOW_RANK_LINEAR_SCALED);
}

function checkShapes(x: tf.Tensor, w: tf.Tensor, bias: tf.Tensor | undefined, a: tf.Tensor, b: tf.Tensor, groups: readonly boolean[], e?: tf.Tensor): void {
  const k = groups.filter(Boolean).length;
  const bad = (why: string) => new Error(`lowRankLinear: ${why} (x ${x.shape}, w ${w.shape}, bias ${bias?.shape}, a ${a.shape}, b ${b.shape}, e ${e?.shape}, groups ${groups})`);
  if (x.rank !== 2 || w.rank !== 2 || a.rank !== 2 || b.rank !== 2) throw bad('x, w, a and b must be matrices');
  const [out, inF] = w.shape as [number, number];
  if (x.shape[1] !== inF) throw bad('x and w disagree on the input width');
  if (bias && (bias.rank !== 1 || bias.shape[0] !== out)) throw bad('bias must be [out]');
  if (groups.length < 1 || k < 1 || out % groups.length !== 0) throw bad('out must split into the groups, one enabled at least');
  const r = b.shape[1]!;
  const gw = out / groups.length;
  if (a.shape[0] !== r * k || a.shape[1] !== inF || b.shape[0] !== gw * k) throw bad('a must be [r*k, in] and b [gw*k, r]');
  if (e && !(e.shape[0] === r * k && (e.rank === 1 || (e.rank === 2 && e.shape[1] === 1)))) throw bad('e must be [r*k] or [r*k, 1]');
}

/** `m` `[N, r*k]` with column c scaled by e[c]. */
function scaleRanks(m: tf.Tensor, e: tf.Tensor): tf.Tensor2D {
  return tf.mul(m, tf.reshape(e, [-1])) as tf.Tensor2D;
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
  e?: tf.Tensor,
): tf.Tensor2D {
  return tf.tidy(() => {
    let y = linear(x, w);
    if (bias) y = tf.add(y, bias);
    let update: tf.Tensor;
    const xa = () => (e ? scaleRanks(tf.matMul(x, a, false, true), e) : tf.matMul(x, a, false, true));
    if (groups.length === 1) {
      update = tf.mul(tf.matMul(xa(), b, false, true), scaling);
    } else {
      const n = x.shape[0];
      const r = b.shape[1]!;
      const gw = w.shape[0] / groups.length;
      const h = xa(); // [N, r*k]
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
function backwardComposite(dy: tf.Tensor2D, x: tf.Tensor2D, w: tf.Tensor2D, a: tf.Tensor2D, b: tf.Tensor2D, e: tf.Tensor | undefined, t: tf.Tensor2D, attrs: Attrs, want: Set<GradName>): Map<GradName, tf.Tensor> {
  const n = x.shape[0];
  const r = b.shape[1]!;
  const gw = w.shape[0] / attrs.groups.length;
  const enabled = slots(attrs.groups).flatMap((j, g) => (j < 0 ? [] : [{ g, j }]));
  const dyOf = (g: number) => tf.slice(dy, [0, g * gw], [n, gw]);
  const out = new Map<GradName, tf.Tensor>();
  if (want.has('dx') || want.has('da') || (e && want.has('de'))) {
    // the gradient of t e (unscaled), then of t
    const ue = tf.concat(enabled.map(({ g, j }) => tf.matMul(dyOf(g), tf.slice(b, [j * gw, 0], [gw, r]))), 1);
    if (e && want.has('de')) out.set('de', tf.reshape(tf.mul(tf.sum(tf.mul(t, ue), 0), attrs.scaling), e.shape));
    const u = e ? scaleRanks(ue, e) : ue;
    if (want.has('dx')) out.set('dx', tf.add(tf.matMul(dy, w), tf.mul(tf.matMul(u, a), attrs.scaling)));
    if (want.has('da')) out.set('da', tf.mul(tf.matMul(u, x, true, false), attrs.scaling));
  }
  if (want.has('db')) {
    const te = e ? scaleRanks(t, e) : t;
    const parts = enabled.map(({ g, j }) => tf.matMul(dyOf(g), tf.slice(te, [0, j * r], [n, r]), true, false));
    out.set('db', tf.mul(tf.concat(parts, 0), attrs.scaling));
  }
  if (want.has('dw')) out.set('dw', tf.matMul(dy, x, true, false));
  if (want.has('dbias')) out.set('dbias', tf.sum(dy, 0));
  return out;
}

/** The gradients `want`: one native kernel call, or the composite form. */
function gradients(dy: tf.Tensor2D, x: tf.Tensor2D, w: tf.Tensor2D, a: tf.Tensor2D, b: tf.Tensor2D, e: tf.Tensor | undefined, t: tf.Tensor2D, attrs: Attrs, want: Set<GradName>): Map<GradName, tf.Tensor> {
  if (!e) want.delete('de');
  if (want.size === 0) return new Map();
  if (!fusedKernelActive(PEFT_LOW_RANK_LINEAR_GRAD)) return backwardComposite(dy, x, w, a, b, e, t, attrs, want);
  const flags = Object.fromEntries(GRAD_NAMES.map((g) => [g, want.has(g)]));
  const inputs: tf.NamedTensorMap = e ? { dy, x, w, a, b, e, t } : { dy, x, w, a, b, t };
  const grads = tf.engine().runKernel(PEFT_LOW_RANK_LINEAR_GRAD, inputs, { scaling: attrs.scaling, groups: attrs.groups, ...flags }) as tf.Tensor[];
  const wanted = GRAD_NAMES.filter((g) => want.has(g));
  return new Map(wanted.map((g, i) => [g, grads[i]!]));
}

const likely = (attrs: Attrs): GradName[] => [
  ...(attrs.needX ? (['dx'] as const) : []),
  ...(attrs.needA ? (['da'] as const) : []),
  ...(attrs.needB ? (['db'] as const) : []),
  ...(attrs.needW ? (['dw'] as const) : []),
  ...(attrs.needBias ? (['dbias'] as const) : []),
  ...(attrs.needE ? (['de'] as const) : []),
];

// the gradients predicted at the forward pass in one call, any other when asked;
// the kernel with e saves e as well (saved: the inputs named, then t)
registerPathGradient<GradName, Attrs>(
  PEFT_LOW_RANK_LINEAR,
  ['x', 'w', 'a', 'b'],
  { x: 'dx', a: 'da', b: 'db', w: 'dw', bias: 'dbias' },
  likely,
  (dy, [x, w, a, b, t], attrs, want) => gradients(dy, x!, w!, a!, b!, undefined, t!, attrs, want),
);
registerPathGradient<GradName, Attrs>(
  PEFT_LOW_RANK_LINEAR_SCALED,
  ['x', 'w', 'a', 'b', 'e'],
  { x: 'dx', a: 'da', b: 'db', w: 'dw', bias: 'dbias', e: 'de' },
  likely,
  (dy, [x, w, a, b, e, t], attrs, want) => gradients(dy, x!, w!, a!, b!, e, t!, attrs, want),
);
