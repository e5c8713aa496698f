// The orthogonality kernels (PeftOrthogonality, PeftOrthogonalityGrad) on the
// addon (native/src/orthogonality.cc), used by core `orthogonalityNorms`
// (src/core/nn/orthogonality.ts): every factor's distance from orthonormality,
// and every factor's gradient, in one call each way. Like the other native
// kernels they read and write the tensors' memory in place; they have no tfjs
// kernel to fall back to (orthogonalityNorms runs its composite form where
// they are not registered).
//
//   PeftOrthogonality      inputs [x0, x1, ...] (an array of matrices, as Concat's), attrs sides → norms [count]
//   PeftOrthogonalityGrad  inputs dn [count], norms [count], x0, x1, ... → dx0, dx1, ...
import * as tf from '@tensorflow/tfjs';
import type { NativeAddon } from './addon.js';
import { PEFT_ORTHOGONALITY, PEFT_ORTHOGONALITY_GRAD } from './fused-names.js';
import { storageFor, type Storage } from './storage.js';

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };

export interface OrthogonalityAttrs {
  /** Per factor: 1 for x^T x (B [out, r]), 0 for x x^T (A [r, in]). */
  sides: number[];
}

/** The factors (input `key(i)`) in order, checked against the sides. */
function factors(name: string, st: Storage, inputs: tf.NamedTensorInfoMap, sides: number[], key: (i: number) => string): tf.TensorInfo[] {
  const xs = sides.map((_, i) => inputs[key(i)]);
  xs.forEach((x, i) => {
    if (!x) throw new Error(`${name}: input x${i} is missing (${sides.length} sides)`);
    if (x.shape.length !== 2) throw new Error(`${name}: x${i} ${x.shape} is not a matrix`);
    if (!st.usable(x)) throw new Error(`${name} (native): expected float32 tensors on the backend, got ${x.dtype}`);
  });
  return xs as tf.TensorInfo[];
}

function forward(backendName: string, addon: NativeAddon): tf.KernelConfig {
  const kernelFunc = ({ inputs, backend, attrs }: KernelArgs) => {
    const st = storageFor(backendName, backend);
    const { sides } = attrs as unknown as OrthogonalityAttrs;
    const xs = factors(PEFT_ORTHOGONALITY, st, inputs, sides, String);
    const norms = st.alloc([xs.length]);
    const vx = xs.map((x) => st.view(x));
    const vn = st.view(norms);
    const params = [xs.length, vn.offset, ...xs.flatMap((x, i) => [x.shape[0]!, x.shape[1]!, sides[i] ? 1 : 0, vx[i]!.offset])];
    addon.orthogonality(vx.map((v) => v.array), vn.array, Int32Array.from(params));
    return norms;
  };
  return { kernelName: PEFT_ORTHOGONALITY, backendName, kernelFunc: kernelFunc as unknown as tf.KernelFunc };
}

function backward(backendName: string, addon: NativeAddon): tf.KernelConfig {
  const kernelFunc = ({ inputs, backend, attrs }: KernelArgs) => {
    const st = storageFor(backendName, backend);
    const { sides } = attrs as unknown as OrthogonalityAttrs;
    const { dn, norms } = inputs as { dn: tf.TensorInfo; norms: tf.TensorInfo };
    const xs = factors(PEFT_ORTHOGONALITY_GRAD, st, inputs, sides, (i) => `x${i}`);
    for (const t of [dn, norms]) {
      if (!t || t.shape.length !== 1 || t.shape[0] !== xs.length || !st.usable(t)) throw new Error(`${PEFT_ORTHOGONALITY_GRAD}: dn and norms must be float32 [${xs.length}]`);
    }
    const dxs = xs.map((x) => st.alloc(x.shape));
    const vx = xs.map((x) => st.view(x));
    const vd = dxs.map((d) => st.view(d));
    const [vdn, vn] = [st.view(dn), st.view(norms)];
    const params = [xs.length, vdn.offset, vn.offset, ...xs.flatMap((x, i) => [x.shape[0]!, x.shape[1]!, sides[i] ? 1 : 0, vx[i]!.offset, vd[i]!.offset])];
    addon.orthogonalityGrad(vx.map((v) => v.array), vdn.array, vn.array, vd.map((v) => v.array), Int32Array.from(params));
    return dxs;
  };
  return { kernelName: PEFT_ORTHOGONALITY_GRAD, backendName, kernelFunc: kernelFunc as unknown as tf.KernelFunc };
}

export const ORTHOGONALITY_KERNELS = [PEFT_ORTHOGONALITY, PEFT_ORTHOGONALITY_GRAD];

export function makeOrthogonalityKernel(name: string, backendName: string, addon: NativeAddon): tf.KernelConfig | undefined {
  if (name === PEFT_ORTHOGONALITY) return forward(backendName, addon);
  if (name === PEFT_ORTHOGONALITY_GRAD) return backward(backendName, addon);
  return undefined;
}
