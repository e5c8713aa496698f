// Multi-head self-attention over packed qkv, as SAM's `Attention` computes it
// between its qkv and proj linears (segment-anything
// `modeling/image_encoder.py`), with the optional decomposed relative-position
// bias (`add_decomposed_rel_pos`), and as LeViT's / TinyViT's, with their
// per-head qkv layout and learned logits bias:
//
//   qkv [nb, N, 3C] → q, k, v [nb, heads, N, hd]   (C = heads x hd, each token's
//                     (3, heads, hd) or, per head, (heads, 3, hd))
//   logits = (q * scale) k^T or (q k^T) * scale
//            (+ relH[i, a] + relW[i, b] at key (a, b)) (+ bias [heads, N, N])
//   out = softmax(logits) v → [nb, N, C] (heads merged)
//
// Where the native kernels are registered (src/core/native), the whole thing
// is one kernel each way (PeftAttention, PeftAttentionGrad): q, k and v are
// read in place from qkv, nothing is transposed or sliced, and the softmax is
// kept for the backward pass. Elsewhere (and as the reference the native
// kernels are tested against) it is the composite form below, on the fast
// matrix product.
import * as tf from '@tensorflow/tfjs';
import { pruneTape } from '../../accel/kernels/index.js';
import type { QkvLayout } from '../../accel/native/attention-kernel.js';
import { PEFT_ATTENTION, PEFT_ATTENTION_GRAD, fusedKernelActive } from '../../accel/native/fused-names.js';
import { mayNeedGradient } from './gradient-path.js';
import { opWithLazyGradient } from './lazy-gradient.js';

export type { QkvLayout };

export interface PackedAttentionOptions {
  heads: number;
  /** Multiplies the logits. */
  scale: number;
  /**
   * Where the scale applies: to the queries `(q * scale) k^T` (SAM, the default)
   * or to the logits `(q k^T) * scale`. Equal up to float rounding.
   */
  scaleOn?: 'query' | 'logits';
  /**
   * SAM's decomposed relative-position bias: the tokens are the `grid` [qh, qw]
   * in row-major order, `rh [qh, kh, hd]` and `rw [qw, kw, hd]` are the looked-up
   * tables (`get_rel_pos`), and the keys are the grid kh x kw (self-attention:
   * kh * kw = N).
   */
  relPos?: { rh: tf.Tensor; rw: tf.Tensor; grid: [number, number] };
  /**
   * Where q, k, v sit in a token's `3C` values: `qkv-major` `[3, heads, hd]`
   * (SAM's reshape, the default) or `per-head` `[heads, 3, hd]` (LeViT and
   * TinyViT: `view(B, N, heads, -1)` then split).
   */
  layout?: QkvLayout;
  /** Added to the logits of every row of the batch (after the rel-pos terms): `[heads, N, N]`. */
  bias?: tf.Tensor;
}

/** `qkv [nb, N, 3C]` → `[nb, N, C]`: every token attends to every token of its row. */
export function packedAttention(qkv: tf.Tensor, options: PackedAttentionOptions): tf.Tensor3D {
  pruneTape();
  const { rh, rw } = options.relPos ?? {};
  const { bias } = options;
  const native =
    qkv.rank === 3 && qkv.size > 0 && [qkv, rh, rw, bias].every((t) => !t || t.dtype === 'float32') && fusedKernelActive(PEFT_ATTENTION);
  if (!native) return packedAttentionComposite(qkv, options);
  return nativeAttention(qkv, options, rh, rw, bias) as tf.Tensor3D;
}

interface Parts {
  q: tf.Tensor4D;
  k: tf.Tensor4D;
  v: tf.Tensor4D;
}

/** q, k, v `[nb, heads, N, hd]` of qkv `[nb, N, 3C]`. */
function split(qkv: tf.Tensor, heads: number, layout: QkvLayout): Parts {
  const [nb, n, c3] = qkv.shape as [number, number, number];
  const hd = c3 / (3 * heads);
  // → [3, nb, heads, N, hd]
  const t =
    layout === 'per-head'
      ? tf.transpose(tf.reshape(qkv, [nb, n, heads, 3, hd]), [3, 0, 2, 1, 4])
      : tf.transpose(tf.reshape(qkv, [nb, n, 3, heads, hd]), [2, 0, 3, 1, 4]);
  const [q, k, v] = tf.unstack(t) as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
  return { q, k, v };
}

/** `[3, nb, heads, N, hd]` (dq, dk, dv stacked) → `[nb, N, 3C]` in the layout: the inverse of split. */
function join(parts: tf.Tensor, shape: number[], layout: QkvLayout): tf.Tensor {
  return tf.reshape(tf.transpose(parts, layout === 'per-head' ? [1, 3, 2, 0, 4] : [1, 3, 0, 2, 4]), shape);
}

/** `[nb, heads, N, hd]` → `[nb, N, heads * hd]`. */
function mergeHeads(x: tf.Tensor): tf.Tensor3D {
  const [nb, heads, n, hd] = x.shape as [number, number, number, number];
  return tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [nb, n, heads * hd]) as tf.Tensor3D;
}

/** relH `[nb, heads, N, kh]` and relW `[nb, heads, N, kw]`: `q_i . rh[y_i, a]` and `q_i . rw[x_i, b]`. */
function relPosTerms(q: tf.Tensor4D, rh: tf.Tensor, rw: tf.Tensor, grid: [number, number]): { relH: tf.Tensor; relW: tf.Tensor } {
  const [nb, heads, , hd] = q.shape;
  const m = nb * heads;
  const [qh, qw] = grid;
  const kh = rh.shape[1]!;
  const kw = rw.shape[1]!;
  const rq = tf.reshape(q, [m, qh, qw, hd]);
  // batch over the query row y: [qh, m*qw, hd] x rh[y]^T
  const byRow = tf.reshape(tf.transpose(rq, [1, 0, 2, 3]), [qh, m * qw, hd]);
  const relH = tf.transpose(tf.reshape(tf.matMul(byRow, rh, false, true), [qh, m, qw, kh]), [1, 0, 2, 3]);
  // batch over the query column x
  const byCol = tf.reshape(tf.transpose(rq, [2, 0, 1, 3]), [qw, m * qh, hd]);
  const relW = tf.transpose(tf.reshape(tf.matMul(byCol, rw, false, true), [qw, m, qh, kw]), [1, 2, 0, 3]);
  return { relH: tf.reshape(relH, [nb, heads, qh * qw, kh]), relW: tf.reshape(relW, [nb, heads, qh * qw, kw]) };
}

/** The composite form (autodiff differentiates it). */
export function packedAttentionComposite(qkv: tf.Tensor, options: PackedAttentionOptions): tf.Tensor3D {
  return tf.tidy(() => {
    const { heads, scale } = options;
    const { q, k, v } = split(qkv, heads, options.layout ?? 'qkv-major');
    const [nb, , n] = q.shape;
    let logits: tf.Tensor =
      (options.scaleOn ?? 'query') === 'query' ? tf.matMul(tf.mul(q, scale), k, false, true) : tf.mul(tf.matMul(q, k, false, true), scale);
    if (options.relPos) {
      const { rh, rw, grid } = options.relPos;
      const kh = rh.shape[1]!;
      const kw = rw.shape[1]!;
      const { relH, relW } = relPosTerms(q, rh, rw, grid);
      const bias = tf.add(tf.reshape(relH, [nb, heads, n, kh, 1]), tf.reshape(relW, [nb, heads, n, 1, kw]));
      logits = tf.add(logits, tf.reshape(bias, [nb, heads, n, kh * kw]));
    }
    if (options.bias) logits = tf.add(logits, options.bias);
    return mergeHeads(tf.matMul(tf.softmax(logits), v));
  });
}

/**
 * The gradients the native backward kernel computes, in tfjs ops: used when the
 * native kernels were turned off between the forward and the backward pass.
 */
function backwardComposite(dout: tf.Tensor, qkv: tf.Tensor, probs: tf.Tensor, attrs: NativeAttrs, rh?: tf.Tensor, rw?: tf.Tensor): tf.Tensor[] {
  const { heads, scale, layout } = attrs;
  const { q, k, v } = split(qkv, heads, layout);
  const [nb, , n, hd] = q.shape;
  const dO = tf.transpose(tf.reshape(dout, [nb, n, heads, hd]), [0, 2, 1, 3]);
  const dP = tf.matMul(dO, v, false, true);
  const dv = tf.matMul(probs, dO, true, false);
  const dL = tf.mul(probs, tf.sub(dP, tf.sum(tf.mul(dP, probs), -1, true)));
  let dq: tf.Tensor;
  let dk: tf.Tensor;
  const onQuery = attrs.scaleOnQuery;
  const dLs = onQuery ? dL : tf.mul(dL, scale);
  if (onQuery) {
    dq = tf.mul(tf.matMul(dL, k), scale);
    dk = tf.matMul(dL, tf.mul(q, scale), true, false);
  } else {
    dq = tf.matMul(dLs, k);
    dk = tf.matMul(dLs, q, true, false);
  }
  const extra: tf.Tensor[] = [];
  if (rh && rw) {
    const [qh, qw] = attrs.grid;
    const kh = rh.shape[1]!;
    const kw = rw.shape[1]!;
    const m = nb * heads;
    const d5 = tf.reshape(dL, [m, qh, qw, kh, kw]);
    const dRelH = tf.sum(d5, 4); // [m, qh, qw, kh]
    const dRelW = tf.sum(d5, 3); // [m, qh, qw, kw]
    const rq = tf.reshape(q, [m, qh, qw, hd]);
    // by query row y: dq += dRelH rh[y]; drh[y] = dRelH^T q
    const hRow = tf.reshape(tf.transpose(dRelH, [1, 0, 2, 3]), [qh, m * qw, kh]);
    const qRow = tf.reshape(tf.transpose(rq, [1, 0, 2, 3]), [qh, m * qw, hd]);
    const dqH = tf.transpose(tf.reshape(tf.matMul(hRow, rh), [qh, m, qw, hd]), [1, 0, 2, 3]);
    const drh = tf.matMul(hRow, qRow, true, false);
    // by query column x
    const wCol = tf.reshape(tf.transpose(dRelW, [2, 0, 1, 3]), [qw, m * qh, kw]);
    const qCol = tf.reshape(tf.transpose(rq, [2, 0, 1, 3]), [qw, m * qh, hd]);
    const dqW = tf.transpose(tf.reshape(tf.matMul(wCol, rw), [qw, m, qh, hd]), [1, 2, 0, 3]);
    const drw = tf.matMul(wCol, qCol, true, false);
    dq = tf.add(dq, tf.reshape(tf.add(dqH, dqW), dq.shape));
    if (attrs.relPosGrad) extra.push(drh, drw);
  }
  if (attrs.withBias) extra.push(tf.sum(dL, 0)); // the bias is broadcast over nb
  const dqkv = join(tf.stack([dq, dk, dv]), qkv.shape, layout);
  return [dqkv, ...extra];
}

/** The kernels' attrs. */
interface NativeAttrs {
  heads: number;
  scale: number;
  scaleOnQuery: boolean;
  layout: QkvLayout;
  grid: [number, number];
  /** Backward: make the logits bias's gradient. */
  withBias: boolean;
  /** Backward: make the rel-pos tables' gradients (with rh, rw). */
  relPosGrad: boolean;
  /** Forward: keep the softmax for the backward pass (absent: kept). */
  keepProbs?: boolean;
}

/** Whether the engine is recording a tape (a gradient is being computed): else no op's gradient can be asked for. */
function recording(): boolean {
  return (tf.engine() as unknown as { state: { activeTape: unknown[] | null } }).state.activeTape != null;
}

/**
 * The native forward kernel as one op of the tape (qkv's, the tables' and the
 * bias's gradients made only when asked: frozen tables and biases, as in every
 * PEFT method, cost nothing), with its probs kept for the backward.
 */
function nativeAttention(qkv: tf.Tensor, options: PackedAttentionOptions, rh?: tf.Tensor, rw?: tf.Tensor, bias?: tf.Tensor): tf.Tensor {
  const scaleOnQuery = (options.scaleOn ?? 'query') === 'query';
  const [qh, qw] = options.relPos?.grid ?? [0, 0];
  const base = { heads: options.heads, scale: options.scale, scaleOnQuery, layout: options.layout ?? 'qkv-major', grid: [qh, qw] as [number, number] };
  // qkv first, then rh and rw with the rel-pos bias, then the logits bias (the forward kernel's inputs)
  const inputs: tf.NamedTensorMap = { qkv, ...(rh && rw ? { rh, rw } : {}), ...(bias ? { bias } : {}) };
  if (!recording()) {
    // nothing records a tape (inference): nothing can ask for a gradient, so the softmax is not kept
    const attrs: NativeAttrs = { ...base, withBias: false, relPosGrad: false, keepProbs: false };
    const [value, probs] = tf.engine().runKernel(PEFT_ATTENTION, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
    probs!.dispose();
    return value!;
  }
  const likely = ['qkv', ...(rh && rw && (mayNeedGradient(rh) || mayNeedGradient(rw)) ? ['rh', 'rw'] : []), ...(bias && mayNeedGradient(bias) ? ['bias'] : [])];
  return opWithLazyGradient(
    inputs,
    (save) => {
      const attrs: NativeAttrs = { ...base, withBias: false, relPosGrad: false };
      const [value, probs] = tf.engine().runKernel(PEFT_ATTENTION, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
      // the backward needs neither the bias nor the logits: only the probs are kept
      save(rh && rw ? [qkv, probs!, rh, rw] : [qkv, probs!]);
      return value!;
    },
    likely,
    (dy, saved, want) => {
      const [xs, ps, sh, sw] = saved as [tf.Tensor, tf.Tensor, tf.Tensor | undefined, tf.Tensor | undefined];
      const relPosGrad = Boolean(sh && sw) && (want.has('rh') || want.has('rw'));
      const attrs: NativeAttrs = { ...base, withBias: Boolean(bias) && want.has('bias'), relPosGrad };
      let grads: tf.Tensor[];
      if (fusedKernelActive(PEFT_ATTENTION_GRAD)) {
        const gradInputs: tf.NamedTensorMap = { dout: dy, qkv: xs, probs: ps, ...(sh && sw ? { rh: sh, rw: sw } : {}) };
        grads = tf.engine().runKernel(PEFT_ATTENTION_GRAD, gradInputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
      } else {
        grads = backwardComposite(dy, xs, ps, attrs, sh, sw);
      }
      // [dqkv, drh?, drw?, dbias?]
      const made = new Map<string, tf.Tensor>([['qkv', grads[0]!]]);
      let i = 1;
      if (relPosGrad) {
        made.set('rh', grads[i++]!);
        made.set('rw', grads[i++]!);
      }
      if (attrs.withBias) made.set('bias', grads[i]!);
      return made;
    },
  );
}
