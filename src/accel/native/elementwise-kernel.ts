// Add, Sub, Multiply and RealDiv on the addon (native/src/elementwise.cc),
// float32, for the broadcasts a training step makes: operands of the output's
// shape, a scalar, or an operand whose shape (without its leading 1s) is a
// suffix of the output's ([C] over [B, H, W, C], [heads, n, n] over
// [windows, heads, n, n]), read as a row repeated over the leading axes. One
// IEEE operation per element, so the results are bit-identical to the kernels
// replaced (tfjs's wasm kernels run one single-threaded pass; the cpu
// backend's compute in float64 and round once, which for +, -, *, / of two
// float32s is the float32 result). On wasm, tensors under WASM_MIN_SIZE
// elements stay on the wasm kernel, faster there than a call into the addon.
// Other broadcasts, dtypes, or empty tensors go to the kernel replaced.
import * as tf from '@tensorflow/tfjs';
import type { NativeAddon } from './addon.js';
import { storageFor } from './storage.js';

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };

const MAX_INT32 = 2 ** 31 - 1;

/** The kernels and the addon's operation codes (elementwise.h's BinaryOp). */
const OPS: Record<string, number> = { Add: 0, Sub: 1, Multiply: 2, RealDiv: 3 };
export const ELEMENTWISE_KERNELS = Object.keys(OPS);

/** Output elements below which the wasm backend keeps its own kernel (measured: docs/native.md). */
export const WASM_MIN_SIZE = 4096;

/** How an operand is read (elementwise.h's BinaryOperand): at i, at i mod inner, or at 0. */
export const Mode = { Full: 0, Row: 1, Scalar: 2 } as const;
export type Mode = (typeof Mode)[keyof typeof Mode];

export interface BinaryLayout {
  out: number[];
  outer: number;
  inner: number;
  modes: [Mode, Mode];
}

function size(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** The output's shape and how each operand is read, or undefined for a broadcast the addon does not take. */
export function binaryLayout(a: readonly number[], b: readonly number[]): BinaryLayout | undefined {
  let out: number[];
  try {
    out = tf.backend_util.assertAndGetBroadcastShape(a as number[], b as number[]);
  } catch {
    return undefined; // the replaced kernel reports it
  }
  const n = size(out);
  if (n === 0 || n > MAX_INT32) return undefined;
  let inner = n;
  const modeOf = (shape: readonly number[]): Mode | undefined => {
    const s = size(shape);
    if (s === n) return Mode.Full;
    if (s === 1) return Mode.Scalar;
    let lead = 0;
    while (shape[lead] === 1) lead++;
    const rest = shape.slice(lead);
    const tail = out.slice(out.length - rest.length);
    if (!rest.every((d, i) => d === tail[i])) return undefined;
    if (inner !== n && inner !== s) return undefined;
    inner = s;
    return Mode.Row;
  };
  const ma = modeOf(a);
  const mb = modeOf(b);
  if (ma === undefined || mb === undefined) return undefined;
  return { out, outer: n / inner, inner, modes: [ma, mb] };
}

export function makeElementwiseKernel(name: string, backendName: string, addon: NativeAddon, original: tf.KernelFunc | undefined): tf.KernelConfig {
  const op = OPS[name]!;
  const minSize = backendName === 'wasm' ? WASM_MIN_SIZE : 0;
  // an addon built before these kernels has no `binary`: everything goes to the replaced kernel
  const native = typeof (addon as Partial<NativeAddon>).binary === 'function';
  const kernelFunc = (args: KernelArgs): tf.TensorInfo => {
    const st = storageFor(backendName, args.backend);
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const layout = native && st.usable(a) && st.usable(b) ? binaryLayout(a.shape, b.shape) : undefined;
    if (!layout || layout.outer * layout.inner < minSize) {
      if (!original) throw new Error(`${name} (native): unsupported inputs, and no kernel of the backend to fall back to`);
      return original(args as never) as tf.TensorInfo;
    }
    const y = st.alloc(layout.out);
    const va = st.view(a);
    const vb = st.view(b);
    const vy = st.view(y);
    addon.binary(va.array, vb.array, vy.array, Int32Array.of(op, layout.outer, layout.inner, layout.modes[0], layout.modes[1], va.offset, vb.offset, vy.offset));
    return y;
  };
  return { kernelName: name, backendName, kernelFunc: kernelFunc as unknown as tf.KernelFunc };
}
