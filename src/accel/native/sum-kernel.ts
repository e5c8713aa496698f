// Sum on the addon (native/src/reduce.cc), float32, when the reduced axes are
// one contiguous block: the input is then [outer, reduced, inner] and the
// output [outer, inner]. tfjs-backend-wasm's Sum transposes the reduced axes to
// the end first, and the bias gradients of the linears (a sum over every
// token, axis 0 of [tokens, features]) were among the slowest kernels of a
// training step. Any other case (scattered axes, other dtypes, no axes) goes to
// the kernel it replaced.
import * as tf from '@tensorflow/tfjs';
import type { NativeAddon } from './addon.js';
import { storageFor } from './storage.js';

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };

const MAX_INT32 = 2 ** 31 - 1;

/** [outer, reduced, inner] and the output shape, or undefined when the axes are not one block. */
export function sumLayout(shape: readonly number[], axis: number | number[], keepDims: boolean): { dims: [number, number, number]; out: number[] } | undefined {
  const rank = shape.length;
  const axes = [...new Set((Array.isArray(axis) ? axis : [axis]).map((a) => (a < 0 ? a + rank : a)))].sort((a, b) => a - b);
  if (axes.length === 0 || axes.some((a) => !Number.isInteger(a) || a < 0 || a >= rank)) return undefined;
  const first = axes[0]!;
  const last = axes[axes.length - 1]!;
  if (last - first + 1 !== axes.length) return undefined;
  const prod = (a: number, b: number) => shape.slice(a, b).reduce((x, y) => x * y, 1);
  const out = keepDims ? shape.map((d, i) => (i >= first && i <= last ? 1 : d)) : shape.filter((_, i) => i < first || i > last);
  return { dims: [prod(0, first), prod(first, last + 1), prod(last + 1, rank)], out };
}

export function makeSumKernel(backendName: string, addon: NativeAddon, original: tf.KernelFunc | undefined): tf.KernelConfig {
  const kernelFunc = (args: KernelArgs): tf.TensorInfo => {
    const st = storageFor(backendName, args.backend);
    const x = args.inputs.x!;
    const { axis, keepDims } = args.attrs as { axis: number | number[]; keepDims: boolean };
    const size = x.shape.reduce((a, b) => a * b, 1);
    const layout = st.usable(x) && size > 0 && size <= MAX_INT32 ? sumLayout(x.shape, axis, Boolean(keepDims)) : undefined;
    if (!layout) {
      if (!original) throw new Error('Sum (native): unsupported input, and no kernel of the backend to fall back to');
      return original(args as never) as tf.TensorInfo;
    }
    const y = st.alloc(layout.out);
    const vx = st.view(x);
    const vy = st.view(y);
    addon.sum(vx.array, vy.array, Int32Array.of(...layout.dims, vx.offset, vy.offset));
    return y;
  };
  return { kernelName: 'Sum', backendName, kernelFunc: kernelFunc as unknown as tf.KernelFunc };
}
