// Transpose on the addon (float32): the axes are first merged where they stay
// neighbours (as the wasm layout kernel does), then one pass in C++ writes the
// output in order (contiguous runs, or 16x16 tiles when the last axis moves).
// On wasm it replaces src/core/kernels' Transpose, whose rank-5 case (the
// window partition and the q/k/v head split of the attention blocks) copies
// one short run at a time from JavaScript. A pure relabelling of axes, another
// dtype, or more than 8 axes after merging go to the kernel it replaced.
import * as tf from '@tensorflow/tfjs';
import { collapseTranspose } from '../kernels/wasm-layout-kernels.js';
import type { NativeAddon } from './addon.js';
import { storageFor } from './storage.js';

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };

const MAX_INT32 = 2 ** 31 - 1;
const MAX_RANK = 8;

export function makeTransposeKernel(backendName: string, addon: NativeAddon, original: tf.KernelFunc | undefined): tf.KernelConfig {
  const kernelFunc = (args: KernelArgs): tf.TensorInfo => {
    const st = storageFor(backendName, args.backend);
    const x = args.inputs.x!;
    const perm = (args.attrs as { perm: number[] }).perm;
    const size = x.shape.reduce((a, b) => a * b, 1);
    const c = st.usable(x) && size > 0 && size <= MAX_INT32 ? collapseTranspose(x.shape, perm) : undefined;
    if (!c || c.perm.every((a, i) => a === i) || c.shape.length > MAX_RANK) {
      if (!original) throw new Error('Transpose (native): unsupported input, and no kernel of the backend to fall back to');
      return original(args as never) as tf.TensorInfo;
    }
    const out = st.alloc(perm.map((a) => x.shape[a]!));
    const vx = st.view(x);
    const vo = st.view(out);
    addon.transpose(vx.array, vo.array, Int32Array.from([c.shape.length, vx.offset, vo.offset, ...c.shape, ...c.perm]));
    return out;
  };
  return { kernelName: 'Transpose', backendName, kernelFunc: kernelFunc as unknown as tf.KernelFunc };
}
