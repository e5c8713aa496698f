// The low-rank linear kernels (PeftLowRankLinear, PeftLowRankLinearGrad) on
// the addon (native/src/lowrank.cc), used by core `lowRankLinear`
// (src/core/nn/low-rank-linear.ts). Like the other native kernels they read
// and write the tensors' memory in place; they have no tfjs kernel to fall back
// to (lowRankLinear runs its composite form where they are not registered).
//
//   PeftLowRankLinear      inputs x [N, in], w [out, in], bias? [out], a [r*k, in], b [gw*k, r], e? [r*k] or [r*k, 1]
//                          → y [N, out], t [N, r*k]
//   PeftLowRankLinearScaled  the same with e (its own name: its gradient saves e too)
//   PeftLowRankLinearGrad  inputs dy, x, w, a, b, e?, t → the gradients asked by attrs dx, da, db, dw, dbias, de, in that order
import * as tf from '@tensorflow/tfjs';
import type { NativeAddon } from './addon.js';
import { PEFT_LOW_RANK_LINEAR, PEFT_LOW_RANK_LINEAR_GRAD, PEFT_LOW_RANK_LINEAR_SCALED } from './fused-names.js';
import { storageFor, type Storage } from './storage.js';

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };

const MAX_INT32 = 2 ** 31 - 1;

export interface LowRankAttrs {
  scaling: number;
  /** Per output group: 1 when it has a low-rank update (its slot j counts the enabled groups before it). */
  groups: number[];
}

export interface LowRankGradAttrs extends LowRankAttrs {
  dx: boolean;
  da: boolean;
  db: boolean;
  dw: boolean;
  dbias: boolean;
  /** e's gradient (only with e), in e's shape. */
  de?: boolean;
}

interface Shape {
  n: number;
  inF: number;
  out: number;
  r: number;
  k: number;
}

const same = (t: tf.TensorInfo, shape: number[]) => t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i]);

function describe(name: string, x: tf.TensorInfo, w: tf.TensorInfo, a: tf.TensorInfo, b: tf.TensorInfo, attrs: LowRankAttrs): Shape {
  if (x.shape.length !== 2 || w.shape.length !== 2 || a.shape.length !== 2 || b.shape.length !== 2) {
    throw new Error(`${name}: x, w, a and b must be matrices, got shapes ${x.shape}, ${w.shape}, ${a.shape}, ${b.shape}`);
  }
  const [n, inF] = x.shape as [number, number];
  const out = w.shape[0]!;
  const groups = attrs.groups.length;
  const k = attrs.groups.filter((g) => g).length;
  if (groups < 1 || out % groups !== 0 || k < 1) throw new Error(`${name}: ${out} outputs do not split into ${groups} groups with one enabled at least`);
  const gw = out / groups;
  const r = b.shape[1]!;
  if (w.shape[1] !== inF || !same(a, [r * k, inF]) || !same(b, [gw * k, r])) {
    throw new Error(`${name}: shapes x ${x.shape}, w ${w.shape}, a ${a.shape}, b ${b.shape} do not fit ${k} enabled of ${groups} groups`);
  }
  if (Math.max(n * inF, n * out, out * inF, n * r * k) > MAX_INT32) throw new Error(`${name}: tensors too large`);
  return { n, inF, out, r, k };
}

function checkE(name: string, e: tf.TensorInfo | undefined, s: Shape): void {
  if (e && !(same(e, [s.r * s.k]) || same(e, [s.r * s.k, 1]))) throw new Error(`${name}: e ${e.shape} is not [${s.r * s.k}] or [${s.r * s.k}, 1]`);
}

function check(name: string, st: Storage, tensors: (tf.TensorInfo | undefined)[]): void {
  for (const t of tensors) if (t && !st.usable(t)) throw new Error(`${name} (native): expected float32 tensors on the backend, got ${t.dtype}`);
}

function params(s: Shape, attrs: LowRankAttrs, offsets: number[]): Int32Array {
  return Int32Array.from([s.n, s.inF, s.out, s.r, attrs.groups.length, ...offsets, ...attrs.groups.map((g) => (g ? 1 : 0))]);
}

function forward(kernelName: string, backendName: string, addon: NativeAddon): tf.KernelConfig {
  const kernelFunc = ({ inputs, backend, attrs }: KernelArgs) => {
    const st = storageFor(backendName, backend);
    const { x, w, bias, a, b, e } = inputs as { x: tf.TensorInfo; w: tf.TensorInfo; bias?: tf.TensorInfo; a: tf.TensorInfo; b: tf.TensorInfo; e?: tf.TensorInfo };
    const at = attrs as unknown as LowRankAttrs;
    check(PEFT_LOW_RANK_LINEAR, st, [x, w, bias, a, b, e]);
    const s = describe(PEFT_LOW_RANK_LINEAR, x, w, a, b, at);
    if (bias && !same(bias, [s.out])) throw new Error(`${PEFT_LOW_RANK_LINEAR}: bias ${bias.shape} is not [${s.out}]`);
    checkE(PEFT_LOW_RANK_LINEAR, e, s);
    if (!e !== (kernelName === PEFT_LOW_RANK_LINEAR)) throw new Error(`${kernelName}: e is ${e ? 'given' : 'missing'}`);
    const y = st.alloc([s.n, s.out]);
    const t = st.alloc([s.n, s.r * s.k]);
    const v = [x, w, bias, a, b, e, y, t].map((u) => (u ? st.view(u) : undefined));
    const arr = (i: number) => v[i]?.array ?? null;
    addon.lowRankLinear(v[0]!.array, v[1]!.array, arr(2), v[3]!.array, v[4]!.array, arr(5), v[6]!.array, v[7]!.array, params(s, at, v.map((u) => u?.offset ?? 0)), at.scaling);
    return [y, t];
  };
  return { kernelName, backendName, kernelFunc: kernelFunc as unknown as tf.KernelFunc };
}

function backward(backendName: string, addon: NativeAddon): tf.KernelConfig {
  const kernelFunc = ({ inputs, backend, attrs }: KernelArgs) => {
    const st = storageFor(backendName, backend);
    const { dy, x, w, a, b, e, t } = inputs as Record<'dy' | 'x' | 'w' | 'a' | 'b' | 't', tf.TensorInfo> & { e?: tf.TensorInfo };
    const at = attrs as unknown as LowRankGradAttrs;
    check(PEFT_LOW_RANK_LINEAR_GRAD, st, [dy, x, w, a, b, e, t]);
    const s = describe(PEFT_LOW_RANK_LINEAR_GRAD, x, w, a, b, at);
    if (!same(dy, [s.n, s.out]) || !same(t, [s.n, s.r * s.k])) {
      throw new Error(`${PEFT_LOW_RANK_LINEAR_GRAD}: dy ${dy.shape} or t ${t.shape} do not match x ${x.shape}, w ${w.shape}, a ${a.shape}`);
    }
    checkE(PEFT_LOW_RANK_LINEAR_GRAD, e, s);
    if (at.de && !e) throw new Error(`${PEFT_LOW_RANK_LINEAR_GRAD}: de asked for without e`);
    const dx = at.dx ? st.alloc(x.shape) : undefined;
    const da = at.da ? st.alloc(a.shape) : undefined;
    const db = at.db ? st.alloc(b.shape) : undefined;
    const dw = at.dw ? st.alloc(w.shape) : undefined;
    const dbias = at.dbias ? st.alloc([s.out]) : undefined;
    const de = at.de && e ? st.alloc(e.shape) : undefined;
    const v = [dy, x, w, a, b, e, t, dx, da, db, dw, dbias, de].map((u) => (u ? st.view(u) : undefined));
    const arr = (i: number) => v[i]?.array ?? null;
    addon.lowRankLinearGrad(
      v[0]!.array,
      v[1]!.array,
      v[2]!.array,
      v[3]!.array,
      v[4]!.array,
      arr(5),
      v[6]!.array,
      arr(7),
      arr(8),
      arr(9),
      arr(10),
      arr(11),
      arr(12),
      params(s, at, v.map((u) => u?.offset ?? 0)),
      at.scaling,
    );
    return [dx, da, db, dw, dbias, de].filter((u): u is tf.TensorInfo => u !== undefined);
  };
  return { kernelName: PEFT_LOW_RANK_LINEAR_GRAD, backendName, kernelFunc: kernelFunc as unknown as tf.KernelFunc };
}

export const LOW_RANK_KERNELS = [PEFT_LOW_RANK_LINEAR, PEFT_LOW_RANK_LINEAR_SCALED, PEFT_LOW_RANK_LINEAR_GRAD];

export function makeLowRankKernel(name: string, backendName: string, addon: NativeAddon): tf.KernelConfig | undefined {
  if (name === PEFT_LOW_RANK_LINEAR || name === PEFT_LOW_RANK_LINEAR_SCALED) return forward(name, backendName, addon);
  if (name === PEFT_LOW_RANK_LINEAR_GRAD) return backward(backendName, addon);
  return undefined;
}
