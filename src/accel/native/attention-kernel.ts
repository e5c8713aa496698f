// The packed-qkv attention kernels (PeftAttention, PeftAttentionGrad) on the
// addon (native/src/attention.cc), used by core `packedAttention`
// (src/core/nn/packed-attention.ts). Like the other native kernels they read
// and write the tensors' memory in place; they have no tfjs kernel to fall back
// to (packedAttention runs its composite form where they are not registered).
//
//   PeftAttention      inputs qkv [nb, N, 3C], rh?, rw?, bias? [heads, N, N] → out [nb, N, C], probs [nb, heads, N, N] ([0] with keepProbs false)
//   PeftAttentionGrad  inputs dout, qkv, probs, rh?, rw?      → dqkv, drh?, drw? (attr relPosGrad), dbias? (attr withBias)
import * as tf from '@tensorflow/tfjs';
import type { NativeAddon } from './addon.js';
import { PEFT_ATTENTION, PEFT_ATTENTION_GRAD } from './fused-names.js';
import { storageFor, type Storage } from './storage.js';

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };

const MAX_INT32 = 2 ** 31 - 1;

/**
 * Where q, k, v sit in a token's row of qkv `[3 * heads * hd]`: `qkv-major`
 * is `[3, heads, hd]` (SAM's reshape), `per-head` is `[heads, 3, hd]` (LeViT,
 * TinyViT: `view(B, N, heads, -1)` then split).
 */
export type QkvLayout = 'qkv-major' | 'per-head';

export interface AttentionAttrs {
  heads: number;
  scale: number;
  scaleOnQuery: boolean;
  /** `qkv-major` when absent. */
  layout?: QkvLayout;
  /** The token grid [qh, qw] of the rel-pos bias (needed with rh, rw). */
  grid?: [number, number];
  /** Backward only: the forward added a logits bias, so return its gradient last. */
  withBias?: boolean;
  /** Backward only, with rh and rw: return their gradients (true when absent; false: the kernel skips them). */
  relPosGrad?: boolean;
  /**
   * Forward only: keep the softmax for the backward pass (true when absent). False (nothing will
   * differentiate it: inference) returns an empty probs, and the kernel keeps each pair's softmax
   * in its scratch instead of a [nb, heads, N, N] tensor (805 MB at SAM ViT-B's 1024 px).
   */
  keepProbs?: boolean;
}

/** [ld, qOff, kOff, vOff, headStride] of a layout: the columns of head h's q are qOff + h headStride + [0, hd). */
export function layoutColumns(layout: QkvLayout, heads: number, hd: number): [number, number, number, number, number] {
  const c = heads * hd;
  return layout === 'per-head' ? [3 * c, 0, hd, 2 * hd, 3 * hd] : [3 * c, 0, c, 2 * c, hd];
}

interface Shape {
  nb: number;
  n: number;
  heads: number;
  hd: number;
  grid: [number, number, number, number];
}

function describe(
  name: string,
  qkv: tf.TensorInfo,
  rh: tf.TensorInfo | undefined,
  rw: tf.TensorInfo | undefined,
  bias: tf.TensorInfo | undefined,
  attrs: AttentionAttrs,
): Shape {
  if (qkv.shape.length !== 3) throw new Error(`${name}: qkv must be [batch, tokens, 3 * channels], got shape ${qkv.shape}`);
  const [nb, n, c3] = qkv.shape as [number, number, number];
  const heads = attrs.heads;
  if (!Number.isInteger(heads) || heads < 1 || c3 % (3 * heads) !== 0) throw new Error(`${name}: qkv's last axis ${c3} is not 3 x heads (${heads}) x head size`);
  const hd = c3 / (3 * heads);
  if (Boolean(rh) !== Boolean(rw)) throw new Error(`${name}: the rel-pos tables rh and rw come together`);
  let grid: Shape['grid'] = [0, 0, 0, 0];
  if (rh && rw) {
    const [qh, qw] = attrs.grid ?? [0, 0];
    const ok = (t: tf.TensorInfo, rows: number) => t.shape.length === 3 && t.shape[0] === rows && t.shape[2] === hd;
    if (!ok(rh, qh) || !ok(rw, qw)) throw new Error(`${name}: rel-pos tables ${rh.shape} and ${rw.shape} do not fit the grid ${qh}x${qw} with head size ${hd}`);
    const kh = rh.shape[1]!;
    const kw = rw.shape[1]!;
    if (qh * qw !== n || kh * kw !== n) throw new Error(`${name}: the rel-pos grids ${qh}x${qw} and ${kh}x${kw} do not cover the ${n} tokens`);
    grid = [qh, qw, kh, kw];
  }
  if (bias && (bias.shape.length !== 3 || bias.shape[0] !== heads || bias.shape[1] !== n || bias.shape[2] !== n)) {
    throw new Error(`${name}: the logits bias ${bias.shape} is not [heads, tokens, tokens] = [${heads}, ${n}, ${n}]`);
  }
  if (nb * heads * n * n > MAX_INT32 || nb * n * c3 > MAX_INT32) throw new Error(`${name}: tensors too large`);
  return { nb, n, heads, hd, grid };
}

function check(name: string, st: Storage, tensors: (tf.TensorInfo | undefined)[]): void {
  for (const t of tensors) if (t && !st.usable(t)) throw new Error(`${name} (native): expected float32 tensors on the backend, got ${t.dtype}`);
}

function params(s: Shape, attrs: AttentionAttrs, offsets: number[]): Int32Array {
  const columns = layoutColumns(attrs.layout ?? 'qkv-major', s.heads, s.hd);
  return Int32Array.from([s.nb, s.n, s.heads, s.hd, ...s.grid, attrs.scaleOnQuery ? 1 : 0, ...columns, ...offsets]);
}

function forward(backendName: string, addon: NativeAddon): tf.KernelConfig {
  const kernelFunc = ({ inputs, backend, attrs }: KernelArgs) => {
    const st = storageFor(backendName, backend);
    const { qkv, rh, rw, bias } = inputs as { qkv: tf.TensorInfo; rh?: tf.TensorInfo; rw?: tf.TensorInfo; bias?: tf.TensorInfo };
    const a = attrs as unknown as AttentionAttrs;
    check(PEFT_ATTENTION, st, [qkv, rh, rw, bias]);
    const s = describe(PEFT_ATTENTION, qkv, rh, rw, bias, a);
    const keep = a.keepProbs ?? true;
    const out = st.alloc([s.nb, s.n, s.heads * s.hd]);
    const probs = st.alloc(keep ? [s.nb, s.heads, s.n, s.n] : [0]);
    const v = [qkv, rh, rw, bias, out, keep ? probs : undefined].map((t) => (t ? st.view(t) : undefined));
    const arr = (i: number) => v[i]?.array ?? null;
    addon.attention(v[0]!.array, arr(1), arr(2), arr(3), v[4]!.array, arr(5), params(s, a, v.map((x) => x?.offset ?? 0)), a.scale);
    return [out, probs];
  };
  return { kernelName: PEFT_ATTENTION, backendName, kernelFunc: kernelFunc as unknown as tf.KernelFunc };
}

function backward(backendName: string, addon: NativeAddon): tf.KernelConfig {
  const kernelFunc = ({ inputs, backend, attrs }: KernelArgs) => {
    const st = storageFor(backendName, backend);
    const { dout, qkv, probs, rh, rw } = inputs as { dout: tf.TensorInfo; qkv: tf.TensorInfo; probs: tf.TensorInfo; rh?: tf.TensorInfo; rw?: tf.TensorInfo };
    const a = attrs as unknown as AttentionAttrs;
    check(PEFT_ATTENTION_GRAD, st, [dout, qkv, probs, rh, rw]);
    const s = describe(PEFT_ATTENTION_GRAD, qkv, rh, rw, undefined, a);
    const same = (t: tf.TensorInfo, shape: number[]) => t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i]);
    if (!same(dout, [s.nb, s.n, s.heads * s.hd]) || !same(probs, [s.nb, s.heads, s.n, s.n])) {
      throw new Error(`${PEFT_ATTENTION_GRAD}: dout ${dout.shape} or probs ${probs.shape} do not match qkv ${qkv.shape}`);
    }
    const dqkv = st.alloc(qkv.shape);
    const relPosGrad = a.relPosGrad ?? true;
    const drh = rh && relPosGrad ? st.alloc(rh.shape) : undefined;
    const drw = rw && relPosGrad ? st.alloc(rw.shape) : undefined;
    const dbias = a.withBias ? st.alloc([s.heads, s.n, s.n]) : undefined;
    const v = [dout, qkv, probs, rh, rw, dqkv, drh, drw, dbias].map((t) => (t ? st.view(t) : undefined));
    addon.attentionGrad(
      v[0]!.array,
      v[1]!.array,
      v[2]!.array,
      v[3]?.array ?? null,
      v[4]?.array ?? null,
      v[5]!.array,
      v[6]?.array ?? null,
      v[7]?.array ?? null,
      v[8]?.array ?? null,
      params(s, a, v.map((x) => x?.offset ?? 0)),
      a.scale,
    );
    return [dqkv, ...(drh && drw ? [drh, drw] : []), ...(dbias ? [dbias] : [])];
  };
  return { kernelName: PEFT_ATTENTION_GRAD, backendName, kernelFunc: kernelFunc as unknown as tf.KernelFunc };
}

export const ATTENTION_KERNELS = [PEFT_ATTENTION, PEFT_ATTENTION_GRAD];

export function makeAttentionKernel(name: string, backendName: string, addon: NativeAddon): tf.KernelConfig | undefined {
  if (name === PEFT_ATTENTION) return forward(backendName, addon);
  if (name === PEFT_ATTENTION_GRAD) return backward(backendName, addon);
  return undefined;
}
