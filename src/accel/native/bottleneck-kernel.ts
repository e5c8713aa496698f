// The bottleneck MLP kernels (PeftBottleneckMlp, PeftBottleneckMlpGrad) on the
// addon (native/src/bottleneck.cc), used by core `bottleneckMlp`
// (src/core/nn/bottleneck-mlp.ts). Like the other native kernels they read and
// write the tensors' memory in place; they have no tfjs kernel to fall back to
// (bottleneckMlp runs its composite form where they are not registered).
//
//   PeftBottleneckMlp      inputs x [N, in], w1 [hid, in], b1 [hid], w2 [out, hid], b2 [out] → y [N, out], pre [N, hid]
//                          (attrs skip, scale: y = scale (gelu(pre) W2^T + b2) (+ x))
//   PeftBottleneckMlpGrad  inputs dy, x, w1, w2, pre → the gradients asked by attrs dx, dw1, db1, dw2, db2, in that order
import * as tf from '@tensorflow/tfjs';
import type { NativeAddon } from './addon.js';
import { PEFT_BOTTLENECK_MLP, PEFT_BOTTLENECK_MLP_GRAD } from './fused-names.js';
import { storageFor, type Storage } from './storage.js';

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };

const MAX_INT32 = 2 ** 31 - 1;

export interface BottleneckAttrs {
  /** y adds x (out = in). */
  skip: boolean;
  /** Multiplies the output without the skip (1 when absent). */
  scale?: number;
}

export interface BottleneckGradAttrs extends BottleneckAttrs {
  dx: boolean;
  dw1: boolean;
  db1: boolean;
  dw2: boolean;
  db2: boolean;
}

interface Shape {
  n: number;
  inF: number;
  hid: number;
  out: number;
}

const same = (t: tf.TensorInfo, shape: number[]) => t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i]);

function describe(name: string, x: tf.TensorInfo, w1: tf.TensorInfo, w2: tf.TensorInfo, skip: boolean): Shape {
  if (x.shape.length !== 2 || w1.shape.length !== 2 || w2.shape.length !== 2) {
    throw new Error(`${name}: x, w1 and w2 must be matrices, got shapes ${x.shape}, ${w1.shape}, ${w2.shape}`);
  }
  const [n, inF] = x.shape as [number, number];
  const [hid, out] = [w1.shape[0]!, w2.shape[0]!];
  if (w1.shape[1] !== inF || w2.shape[1] !== hid || (skip && out !== inF)) {
    throw new Error(`${name}: shapes x ${x.shape}, w1 ${w1.shape}, w2 ${w2.shape} do not chain${skip ? ' back to x' : ''}`);
  }
  if (Math.max(n * inF, n * hid, n * out, hid * inF, out * hid) > MAX_INT32) throw new Error(`${name}: tensors too large`);
  return { n, inF, hid, out };
}

function check(name: string, st: Storage, tensors: (tf.TensorInfo | undefined)[]): void {
  for (const t of tensors) if (t && !st.usable(t)) throw new Error(`${name} (native): expected float32 tensors on the backend, got ${t.dtype}`);
}

function params(s: Shape, skip: boolean, offsets: number[]): Int32Array {
  return Int32Array.from([s.n, s.inF, s.hid, s.out, skip ? 1 : 0, ...offsets]);
}

function forward(backendName: string, addon: NativeAddon): tf.KernelConfig {
  const kernelFunc = ({ inputs, backend, attrs }: KernelArgs) => {
    const st = storageFor(backendName, backend);
    const { x, w1, b1, w2, b2 } = inputs as Record<'x' | 'w1' | 'b1' | 'w2' | 'b2', tf.TensorInfo>;
    const skip = Boolean((attrs as unknown as BottleneckAttrs).skip);
    const scale = (attrs as unknown as BottleneckAttrs).scale ?? 1;
    check(PEFT_BOTTLENECK_MLP, st, [x, w1, b1, w2, b2]);
    const s = describe(PEFT_BOTTLENECK_MLP, x, w1, w2, skip);
    if (!same(b1, [s.hid]) || !same(b2, [s.out])) throw new Error(`${PEFT_BOTTLENECK_MLP}: biases ${b1.shape}, ${b2.shape} are not [${s.hid}], [${s.out}]`);
    const y = st.alloc([s.n, s.out]);
    const pre = st.alloc([s.n, s.hid]);
    const v = [x, w1, b1, w2, b2, y, pre].map((u) => st.view(u));
    addon.bottleneckMlp(v[0]!.array, v[1]!.array, v[2]!.array, v[3]!.array, v[4]!.array, v[5]!.array, v[6]!.array, params(s, skip, v.map((u) => u.offset)), scale);
    return [y, pre];
  };
  return { kernelName: PEFT_BOTTLENECK_MLP, backendName, kernelFunc: kernelFunc as unknown as tf.KernelFunc };
}

function backward(backendName: string, addon: NativeAddon): tf.KernelConfig {
  const kernelFunc = ({ inputs, backend, attrs }: KernelArgs) => {
    const st = storageFor(backendName, backend);
    const { dy, x, w1, w2, pre } = inputs as Record<'dy' | 'x' | 'w1' | 'w2' | 'pre', tf.TensorInfo>;
    const at = attrs as unknown as BottleneckGradAttrs;
    check(PEFT_BOTTLENECK_MLP_GRAD, st, [dy, x, w1, w2, pre]);
    const s = describe(PEFT_BOTTLENECK_MLP_GRAD, x, w1, w2, at.skip);
    if (!same(dy, [s.n, s.out]) || !same(pre, [s.n, s.hid])) {
      throw new Error(`${PEFT_BOTTLENECK_MLP_GRAD}: dy ${dy.shape} or pre ${pre.shape} do not match x ${x.shape}, w1 ${w1.shape}, w2 ${w2.shape}`);
    }
    const dx = at.dx ? st.alloc(x.shape) : undefined;
    const dw1 = at.dw1 ? st.alloc(w1.shape) : undefined;
    const db1 = at.db1 ? st.alloc([s.hid]) : undefined;
    const dw2 = at.dw2 ? st.alloc(w2.shape) : undefined;
    const db2 = at.db2 ? st.alloc([s.out]) : undefined;
    const v = [dy, x, w1, w2, pre, dx, dw1, db1, dw2, db2].map((u) => (u ? st.view(u) : undefined));
    const arr = (i: number) => v[i]?.array ?? null;
    addon.bottleneckMlpGrad(
      v[0]!.array,
      v[1]!.array,
      v[2]!.array,
      v[3]!.array,
      v[4]!.array,
      arr(5),
      arr(6),
      arr(7),
      arr(8),
      arr(9),
      params(s, at.skip, v.map((u) => u?.offset ?? 0)),
      at.scale ?? 1,
    );
    return [dx, dw1, db1, dw2, db2].filter((u): u is tf.TensorInfo => u !== undefined);
  };
  return { kernelName: PEFT_BOTTLENECK_MLP_GRAD, backendName, kernelFunc: kernelFunc as unknown as tf.KernelFunc };
}

export const BOTTLENECK_KERNELS = [PEFT_BOTTLENECK_MLP, PEFT_BOTTLENECK_MLP_GRAD];

export function makeBottleneckKernel(name: string, backendName: string, addon: NativeAddon): tf.KernelConfig | undefined {
  if (name === PEFT_BOTTLENECK_MLP) return forward(backendName, addon);
  if (name === PEFT_BOTTLENECK_MLP_GRAD) return backward(backendName, addon);
  return undefined;
}
