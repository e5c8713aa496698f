// Cheap data-movement kernels for the wasm backend, replacing tfjs-backend-wasm's:
//
// - Identity (what the engine's `clone` runs, once for every tensor a kernel
//   saves for its gradient) copied the whole tensor; here it shares the data,
//   as the cpu backend and the wasm Reshape already do. Tensors are immutable
//   (a Variable's assign swaps in new data), so sharing is safe.
// - Slice read the WHOLE input out of the heap (`readSync` copies) before
//   copying the slice; SplitV and Unpack call it once per output, so a split
//   in n parts copied the input n times. Here a slice copies only what it
//   keeps, in contiguous runs, inside the heap (`copyWithin`).
import * as tf from '@tensorflow/tfjs';
import { asWasm, dataOf, type WasmBackend } from './wasm-util.js';

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };

function elementView(backend: WasmBackend, dtype: tf.DataType): { heap: Int32Array | Uint8Array; bytes: number } {
  if (dtype === 'float32' || dtype === 'int32') return { heap: backend.wasm.HEAP32, bytes: 4 };
  if (dtype === 'bool') return { heap: backend.wasm.HEAPU8, bytes: 1 };
  throw new Error(`wasm slice: unsupported dtype ${dtype}`);
}

/** Copies `x[begin : begin + size]` into a new tensor. Shapes already resolved (no -1). */
export function sliceInfo(backend: WasmBackend, x: tf.TensorInfo, begin: number[], size: number[]): tf.TensorInfo {
  const out = backend.makeOutput(size, x.dtype);
  const n = size.reduce((a, b) => a * b, 1);
  if (n === 0) return out;
  // views after the allocation (it may have grown the heap)
  const { heap, bytes } = elementView(backend, x.dtype);
  const xo = dataOf(backend, x).memoryOffset / bytes;
  const oo = dataOf(backend, out).memoryOffset / bytes;
  const rank = x.shape.length;
  const strides = new Array<number>(rank);
  let s = 1;
  for (let d = rank - 1; d >= 0; d--) {
    strides[d] = s;
    s *= x.shape[d]!;
  }
  // trailing axes taken whole merge into one contiguous run
  let d = rank - 1;
  while (d >= 0 && size[d] === x.shape[d]) d--;
  if (d < 0) {
    heap.copyWithin(oo, xo, xo + n);
    return out;
  }
  const run = size[d]! * strides[d]!;
  const outer = n / run;
  const idx = new Array<number>(d).fill(0);
  const base = xo + begin[d]! * strides[d]!;
  let o = oo;
  for (let i = 0; i < outer; i++) {
    let src = base;
    for (let a = 0; a < d; a++) src += (begin[a]! + idx[a]!) * strides[a]!;
    heap.copyWithin(o, src, src + run);
    o += run;
    for (let a = d - 1; a >= 0; a--) {
      if (++idx[a]! < size[a]!) break;
      idx[a] = 0;
    }
  }
  return out;
}

export function makeCopyKernels(original: (name: string) => tf.KernelFunc | undefined): tf.KernelConfig[] {
  const originalSlice = original('Slice');

  const identity = ({ inputs, backend }: KernelArgs): tf.TensorInfo => {
    const x = inputs.x!;
    asWasm(backend).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  };

  const slice = (args: KernelArgs): tf.TensorInfo => {
    const x = args.inputs.x!;
    const b = asWasm(args.backend);
    if (x.dtype === 'string' && originalSlice) return originalSlice(args as never) as tf.TensorInfo;
    const { begin, size } = args.attrs as { begin: number | number[]; size: number | number[] };
    const [begin_, size_] = tf.slice_util.parseSliceParams(x as tf.Tensor, begin, size);
    return sliceInfo(b, x, begin_, size_);
  };

  const splitV = ({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] => {
    const x = inputs.x!;
    const b = asWasm(backend);
    const { numOrSizeSplits, axis } = attrs as { numOrSizeSplits: number | number[]; axis: number };
    const ax = tf.util.parseAxisParam(axis, x.shape)[0]!;
    const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, numOrSizeSplits, ax);
    const begin = new Array<number>(x.shape.length).fill(0);
    return sizes.map((s) => {
      const size = [...x.shape];
      size[ax] = s;
      const out = sliceInfo(b, x, begin, size);
      begin[ax]! += s;
      return out;
    });
  };

  const unpack = ({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] => {
    const value = inputs.value!;
    const b = asWasm(backend);
    let axis = (attrs as { axis: number }).axis;
    if (axis < 0) axis += value.shape.length;
    const outShape = value.shape.filter((_, i) => i !== axis);
    const begin = new Array<number>(value.shape.length).fill(0);
    const size = [...value.shape];
    size[axis] = 1;
    const outs: tf.TensorInfo[] = [];
    for (let i = 0; i < value.shape[axis]!; i++) {
      begin[axis] = i;
      const o = sliceInfo(b, value, begin, size);
      outs.push({ dataId: o.dataId, dtype: o.dtype, shape: outShape });
    }
    return outs;
  };

  return [
    { kernelName: 'Identity', backendName: 'wasm', kernelFunc: identity as unknown as tf.KernelFunc },
    { kernelName: 'Slice', backendName: 'wasm', kernelFunc: slice as unknown as tf.KernelFunc },
    { kernelName: 'SplitV', backendName: 'wasm', kernelFunc: splitV as unknown as tf.KernelFunc },
    { kernelName: 'Unpack', backendName: 'wasm', kernelFunc: unpack as unknown as tf.KernelFunc },
  ];
}
