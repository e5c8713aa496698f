// The native kernels: matrix products (BatchMatMul, and PeftMatMul — core
// `matMul`/`linear` on wasm), NHWC convolutions (Conv2D, depthwise, each
// with both gradients), the fused elementwise kernels (fused-kernels.ts),
// the packed attention (attention-kernel.ts), Transpose (transpose-kernel.ts)
// and Sum (sum-kernel.ts), run by the OpenBLAS addon on the tensors' memory in
// place. A case a kernel does not cover (another dtype, NCHW, a bias
// that is not a vector) goes to the kernel it replaced.
import * as tf from '@tensorflow/tfjs';
import type { NativeAddon } from './addon.js';
import { ATTENTION_KERNELS, makeAttentionKernel } from './attention-kernel.js';
import { LOW_RANK_KERNELS, makeLowRankKernel } from './low-rank-kernel.js';
import { ORTHOGONALITY_KERNELS, makeOrthogonalityKernel } from './orthogonality-kernel.js';
import { BOTTLENECK_KERNELS, makeBottleneckKernel } from './bottleneck-kernel.js';
import { ELEMENTWISE_KERNELS, makeElementwiseKernel } from './elementwise-kernel.js';
import { makeSumKernel } from './sum-kernel.js';
import { FUSED_NATIVE_KERNELS, makeFusedKernel } from './fused-kernels.js';
import { storageFor, type Storage } from './storage.js';
import { makeTransposeKernel } from './transpose-kernel.js';

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };
type Original = tf.KernelFunc | undefined;

const MAX_INT32 = 2 ** 31 - 1;

function size(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function fallback(name: string, original: Original, args: KernelArgs, why: string): tf.TensorInfo {
  if (!original) throw new Error(`${name} (native): ${why}, and the backend has no kernel of its own to fall back to`);
  return original(args as never) as tf.TensorInfo;
}

/**
 * Element offsets of the matrices of an operand with leading axes `lead`
 * (padded on the left with 1s) for each matrix of the broadcast `out` lead.
 */
function broadcastIndex(lead: number[], out: number[], matrix: number): Int32Array {
  const pad = [...Array(out.length - lead.length).fill(1), ...lead] as number[];
  const strides = pad.map((_, i) => size(pad.slice(i + 1)));
  const idx = new Int32Array(size(out));
  for (let i = 0; i < idx.length; i++) {
    let rest = i;
    let src = 0;
    for (let d = out.length - 1; d >= 0; d--) {
      const coord = rest % out[d]!;
      rest = Math.floor(rest / out[d]!);
      if (pad[d] !== 1) src += coord * strides[d]!;
    }
    idx[i] = src * matrix;
  }
  return idx;
}

/**
 * `op(a) op(b) (+ bias)` with tf.matMul's broadcasting of the leading axes;
 * undefined when the operands are outside what the addon takes.
 */
export function nativeProduct(
  addon: NativeAddon,
  st: Storage,
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
  bias?: tf.TensorInfo,
): tf.TensorInfo | undefined {
  const ra = a.shape.length;
  const rb = b.shape.length;
  if (ra < 2 || rb < 2 || !st.usable(a) || !st.usable(b) || (bias && !st.usable(bias))) return undefined;
  const m = transposeA ? a.shape[ra - 1]! : a.shape[ra - 2]!;
  const ka = transposeA ? a.shape[ra - 2]! : a.shape[ra - 1]!;
  const kb = transposeB ? b.shape[rb - 1]! : b.shape[rb - 2]!;
  const n = transposeB ? b.shape[rb - 2]! : b.shape[rb - 1]!;
  if (ka !== kb) {
    throw new Error(
      `Error in matMul: inner shapes (${ka}) and (${kb}) of Tensors with shapes ${a.shape} and ${b.shape} and transposeA=${transposeA} and transposeB=${transposeB} must match.`,
    );
  }
  const k = ka;
  if (bias && (bias.shape.length !== 1 || bias.shape[0] !== n)) return undefined;
  const la = a.shape.slice(0, -2);
  const lb = b.shape.slice(0, -2);
  const lead = tf.broadcast_util.assertAndGetBroadcastShape(la, lb);
  const batch = size(lead);
  if (Math.max(m * k, k * n, batch * m * n, size(a.shape), size(b.shape)) > MAX_INT32) return undefined;
  const out = st.alloc([...lead, m, n]);
  if (batch * m * n === 0) return out;
  const batchA = size(la);
  const batchB = size(lb);
  // a side's matrices: one shared (stride 0), one per output matrix (packed), or a broadcast index
  const aIdx = batchA !== 1 && batchA !== batch ? broadcastIndex(la, lead, m * k) : null;
  const bIdx = batchB !== 1 && batchB !== batch ? broadcastIndex(lb, lead, k * n) : null;
  let rows = m;
  let count = batch;
  if (batchB === 1 && batchA === batch && !transposeA) {
    // a's matrices stacked row-wise all meet the same b: one product
    rows = batch * m;
    count = 1;
  }
  const A = st.view(a);
  const B = st.view(b);
  const C = st.view(out);
  const Bias = bias ? st.view(bias) : undefined;
  const dims = Int32Array.of(
    count,
    rows,
    n,
    k,
    transposeA ? 1 : 0,
    transposeB ? 1 : 0,
    A.offset,
    batchA === 1 ? 0 : m * k,
    B.offset,
    batchB === 1 ? 0 : k * n,
    C.offset,
    Bias?.offset ?? 0,
  );
  addon.gemm(A.array, B.array, C.array, dims, Bias?.array ?? null, aIdx, bIdx);
  return out;
}

function matMulKernel(name: string, backendName: string, addon: NativeAddon, original: Original): tf.KernelConfig {
  const kernelFunc = (args: KernelArgs) => {
    const { a, b, bias } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo; bias?: tf.TensorInfo };
    const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
    const out = nativeProduct(addon, storageFor(backendName, args.backend), a, b, Boolean(transposeA), Boolean(transposeB), bias);
    return out ?? fallback(name, original, args, `unsupported operands ${a.shape} x ${b.shape}`);
  };
  return { kernelName: name, backendName, kernelFunc: kernelFunc as unknown as tf.KernelFunc };
}

interface ConvAttrs {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat?: 'NHWC' | 'NCHW';
  dilations?: [number, number] | number;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

type ConvFn = 'conv2d' | 'conv2dBackpropInput' | 'conv2dBackpropFilter' | 'depthwise' | 'depthwiseBackpropInput' | 'depthwiseBackpropFilter';

interface ConvSpec {
  kernelName: string;
  fn: ConvFn;
  depthwise: boolean;
  /** Input names in the addon's argument order. */
  inputs: [string, string];
  /** x's and the filter's shapes from the kernel's inputs and attrs. */
  shapes(inputs: tf.NamedTensorInfoMap, attrs: ConvAttrs & Record<string, unknown>): { x: number[]; filter: number[] };
  /** The output's shape and which of the conv's shapes each input must have. */
  out(info: tf.backend_util.Conv2DInfo): { shape: number[]; expect: [number[], number[]] };
}

const CONVS: ConvSpec[] = [
  {
    kernelName: 'Conv2D',
    fn: 'conv2d',
    depthwise: false,
    inputs: ['x', 'filter'],
    shapes: (i) => ({ x: i.x!.shape, filter: i.filter!.shape }),
    out: (c) => ({ shape: c.outShape, expect: [c.inShape, filterShapeOf(c)] }),
  },
  {
    kernelName: 'Conv2DBackpropInput',
    fn: 'conv2dBackpropInput',
    depthwise: false,
    inputs: ['dy', 'filter'],
    shapes: (i, a) => ({ x: a.inputShape as number[], filter: i.filter!.shape }),
    out: (c) => ({ shape: c.inShape, expect: [c.outShape, filterShapeOf(c)] }),
  },
  {
    kernelName: 'Conv2DBackpropFilter',
    fn: 'conv2dBackpropFilter',
    depthwise: false,
    inputs: ['x', 'dy'],
    shapes: (i, a) => ({ x: i.x!.shape, filter: a.filterShape as number[] }),
    out: (c) => ({ shape: filterShapeOf(c), expect: [c.inShape, c.outShape] }),
  },
  {
    kernelName: 'DepthwiseConv2dNative',
    fn: 'depthwise',
    depthwise: true,
    inputs: ['x', 'filter'],
    shapes: (i) => ({ x: i.x!.shape, filter: i.filter!.shape }),
    out: (c) => ({ shape: c.outShape, expect: [c.inShape, depthwiseFilterShapeOf(c)] }),
  },
  {
    kernelName: 'DepthwiseConv2dNativeBackpropInput',
    fn: 'depthwiseBackpropInput',
    depthwise: true,
    inputs: ['dy', 'filter'],
    shapes: (i, a) => ({ x: a.inputShape as number[], filter: i.filter!.shape }),
    out: (c) => ({ shape: c.inShape, expect: [c.outShape, depthwiseFilterShapeOf(c)] }),
  },
  {
    kernelName: 'DepthwiseConv2dNativeBackpropFilter',
    fn: 'depthwiseBackpropFilter',
    depthwise: true,
    inputs: ['x', 'dy'],
    shapes: (i, a) => ({ x: i.x!.shape, filter: a.filterShape as number[] }),
    out: (c) => ({ shape: depthwiseFilterShapeOf(c), expect: [c.inShape, c.outShape] }),
  },
];

function filterShapeOf(c: tf.backend_util.Conv2DInfo): number[] {
  return [c.filterHeight, c.filterWidth, c.inChannels, c.outChannels];
}

function depthwiseFilterShapeOf(c: tf.backend_util.Conv2DInfo): number[] {
  return [c.filterHeight, c.filterWidth, c.inChannels, c.outChannels / c.inChannels];
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function convKernel(spec: ConvSpec, backendName: string, addon: NativeAddon, original: Original): tf.KernelConfig {
  const kernelFunc = (args: KernelArgs): tf.TensorInfo => {
    const attrs = args.attrs as unknown as ConvAttrs & Record<string, unknown>;
    const st = storageFor(backendName, args.backend);
    const in0 = args.inputs[spec.inputs[0]]!;
    const in1 = args.inputs[spec.inputs[1]]!;
    if ((attrs.dataFormat ?? 'NHWC') !== 'NHWC') return fallback(spec.kernelName, original, args, 'only NHWC is supported');
    if (!st.usable(in0) || !st.usable(in1)) return fallback(spec.kernelName, original, args, 'unsupported inputs');
    const { x, filter } = spec.shapes(args.inputs, attrs);
    if (x.length !== 4 || filter.length !== 4) return fallback(spec.kernelName, original, args, 'rank-4 operands expected');
    const info = tf.backend_util.computeConv2DInfo(
      x as [number, number, number, number],
      filter as [number, number, number, number],
      attrs.strides,
      attrs.dilations ?? 1,
      attrs.pad,
      attrs.dimRoundingMode,
      spec.depthwise,
      'channelsLast',
    );
    const { shape, expect } = spec.out(info);
    if (!sameShape(in0.shape, expect[0]) || !sameShape(in1.shape, expect[1])) {
      return fallback(spec.kernelName, original, args, `operand shapes ${in0.shape} and ${in1.shape} do not match the convolution`);
    }
    if (Math.max(size(info.inShape), size(info.outShape), size(filter)) > MAX_INT32) {
      return fallback(spec.kernelName, original, args, 'operands too large');
    }
    const out = st.alloc(shape);
    if (size(shape) === 0) return out;
    const v0 = st.view(in0);
    const v1 = st.view(in1);
    const vo = st.view(out);
    const params = Int32Array.of(
      info.batchSize,
      info.inHeight,
      info.inWidth,
      info.inChannels,
      info.outHeight,
      info.outWidth,
      info.outChannels,
      info.filterHeight,
      info.filterWidth,
      info.strideHeight,
      info.strideWidth,
      info.dilationHeight,
      info.dilationWidth,
      info.padInfo.top,
      info.padInfo.left,
      v0.offset,
      v1.offset,
      vo.offset,
    );
    addon[spec.fn](v0.array, v1.array, vo.array, params);
    return out;
  };
  return { kernelName: spec.kernelName, backendName, kernelFunc: kernelFunc as unknown as tf.KernelFunc };
}

/** Names of the kernels registered on a backend (PeftMatMul only where it exists: wasm). */
export function nativeKernelNames(backendName: string): string[] {
  const products = backendName === 'wasm' ? ['BatchMatMul', 'PeftMatMul'] : ['BatchMatMul'];
  return [...products, ...CONVS.map((c) => c.kernelName), ...FUSED_NATIVE_KERNELS, ...ATTENTION_KERNELS, ...LOW_RANK_KERNELS, ...ORTHOGONALITY_KERNELS, ...BOTTLENECK_KERNELS, 'Transpose', 'Sum', ...ELEMENTWISE_KERNELS];
}

/** The kernel configs for a backend, each falling back to `original(name)`. */
export function makeNativeKernels(backendName: string, addon: NativeAddon, original: (name: string) => Original): tf.KernelConfig[] {
  const kernels: tf.KernelConfig[] = [];
  for (const name of nativeKernelNames(backendName)) {
    const spec = CONVS.find((c) => c.kernelName === name);
    if (spec) kernels.push(convKernel(spec, backendName, addon, original(name)));
    else if (name === 'Transpose') kernels.push(makeTransposeKernel(backendName, addon, original(name)));
    else if (name === 'Sum') kernels.push(makeSumKernel(backendName, addon, original(name)));
    else if (ELEMENTWISE_KERNELS.includes(name)) kernels.push(makeElementwiseKernel(name, backendName, addon, original(name)));
    else if (ATTENTION_KERNELS.includes(name)) kernels.push(makeAttentionKernel(name, backendName, addon)!);
    else if (LOW_RANK_KERNELS.includes(name)) kernels.push(makeLowRankKernel(name, backendName, addon)!);
    else if (ORTHOGONALITY_KERNELS.includes(name)) kernels.push(makeOrthogonalityKernel(name, backendName, addon)!);
    else if (BOTTLENECK_KERNELS.includes(name)) kernels.push(makeBottleneckKernel(name, backendName, addon)!);
    else kernels.push(makeFusedKernel(name, backendName, addon, original(name)) ?? matMulKernel(name, backendName, addon, original(name)));
  }
  return kernels;
}
