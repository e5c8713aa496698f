// Layout kernels for the wasm backend, in front of tfjs-backend-wasm's own:
//
// - Transpose: the backend's C++ transpose is fast up to rank 4 but ~50x
//   slower on rank 5+ (a generic index loop); models reach rank 5 when they
//   split fused (q, k, v, head) axes in one go. Here axes of size 1 are dropped
//   and axes that stay neighbours are merged first; what is then rank <= 4
//   goes to the C++ kernel, and a higher rank that keeps its last axis is
//   copied in contiguous runs inside the heap. Where the threaded wasm
//   kernels run (src/accel/wasm-threads), float32 and int32 transposes of up
//   to rank 6 (after that merging) go to them instead.
// - GatherV2 (batchDims 0): the backend's kernel bound-checks every index
//   with a closure per element; here a plain loop and run copies.
import * as tf from '@tensorflow/tfjs';
import { operandOf, type PoolSource } from '../wasm-threads/index.js';
import { asWasm, dataOf, type WasmBackend } from './wasm-util.js';

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };

function heapOf(backend: WasmBackend, dtype: tf.DataType): { heap: Int32Array | Uint8Array; bytes: number } | undefined {
  if (dtype === 'float32' || dtype === 'int32') return { heap: backend.wasm.HEAP32, bytes: 4 };
  if (dtype === 'bool') return { heap: backend.wasm.HEAPU8, bytes: 1 };
  return undefined;
}

/**
 * The same transpose on fewer axes: size-1 axes dropped, and input axes that
 * stay adjacent (and in order) in the output merged.
 */
export function collapseTranspose(shape: number[], perm: number[]): { shape: number[]; perm: number[] } {
  const keep = shape.map((s, i) => (s !== 1 ? i : -1)).filter((i) => i >= 0);
  const renumber = new Map(keep.map((axis, i) => [axis, i]));
  const s1 = keep.map((i) => shape[i]!);
  const p1 = perm.filter((a) => renumber.has(a)).map((a) => renumber.get(a)!);
  if (p1.length === 0) return { shape: [], perm: [] };
  // groups of output positions whose input axes are consecutive
  const groups: number[][] = [];
  for (const a of p1) {
    const last = groups[groups.length - 1];
    if (last && last[last.length - 1]! + 1 === a) last.push(a);
    else groups.push([a]);
  }
  const byInput = [...groups].sort((g, h) => g[0]! - h[0]!);
  const newShape = byInput.map((g) => g.reduce((n, a) => n * s1[a]!, 1));
  const newPerm = groups.map((g) => byInput.indexOf(g));
  return { shape: newShape, perm: newPerm };
}

function runCopyTranspose(backend: WasmBackend, x: tf.TensorInfo, shape: number[], perm: number[], outShape: number[]): tf.TensorInfo {
  const out = backend.makeOutput(outShape, x.dtype);
  const h = heapOf(backend, x.dtype)!;
  const xo = dataOf(backend, x).memoryOffset / h.bytes;
  const oo = dataOf(backend, out).memoryOffset / h.bytes;
  const rank = shape.length;
  const inStrides = new Array<number>(rank);
  let s = 1;
  for (let d = rank - 1; d >= 0; d--) {
    inStrides[d] = s;
    s *= shape[d]!;
  }
  const run = shape[rank - 1]!; // the last axis stays last
  const oShape = perm.map((a) => shape[a]!);
  const srcStride = perm.map((a) => inStrides[a]!); // input stride of each output axis
  const outer = s / run;
  const idx = new Array<number>(rank - 1).fill(0);
  let src = xo;
  let dst = oo;
  for (let i = 0; i < outer; i++) {
    h.heap.copyWithin(dst, src, src + run);
    dst += run;
    // odometer over the output axes but the last; keep src in step
    for (let d = rank - 2; d >= 0; d--) {
      src += srcStride[d]!;
      if (++idx[d]! < oShape[d]!) break;
      src -= srcStride[d]! * oShape[d]!;
      idx[d] = 0;
    }
  }
  return out;
}

/** Below this many elements the backend's own transpose is as fast as the threaded one. */
const THREADED_MIN_ELEMENTS = 4096;

export function makeLayoutKernels(original: (name: string) => tf.KernelFunc | undefined, poolOf?: PoolSource): tf.KernelConfig[] {
  const originalTranspose = original('Transpose');
  const originalGather = original('GatherV2');

  const transpose = (args: KernelArgs): tf.TensorInfo => {
    const backend = asWasm(args.backend);
    const x = args.inputs.x!;
    const perm = (args.attrs as { perm: number[] }).perm;
    const outShape = perm.map((a) => x.shape[a]!);
    const c = collapseTranspose(x.shape, perm);
    const identity = c.perm.every((a, i) => a === i);
    if (identity && heapOf(backend, x.dtype)) {
      // a pure relabelling of axes: the data does not move
      backend.incRef(x.dataId);
      return { dataId: x.dataId, shape: outShape, dtype: x.dtype };
    }
    const size = outShape.reduce((a, b) => a * b, 1);
    if (poolOf && (x.dtype === 'float32' || x.dtype === 'int32') && c.shape.length <= 6 && size >= THREADED_MIN_ELEMENTS) {
      // the threaded kernels (4-byte elements moved as they are)
      const pool = poolOf();
      const out = backend.makeOutput(outShape, x.dtype);
      pool.transpose(operandOf(pool, backend, x), operandOf(pool, backend, out), c.shape, c.perm);
      return out;
    }
    if (c.shape.length <= 4 && originalTranspose) {
      const out = originalTranspose({
        inputs: { x: { dataId: x.dataId, shape: c.shape, dtype: x.dtype } },
        backend: backend as never,
        attrs: { perm: c.perm },
      }) as tf.TensorInfo;
      return { ...out, shape: outShape };
    }
    if (c.perm[c.perm.length - 1] === c.perm.length - 1 && c.shape[c.shape.length - 1]! >= 4 && heapOf(backend, x.dtype)) {
      return runCopyTranspose(backend, x, c.shape, c.perm, outShape);
    }
    if (!originalTranspose) throw new Error('Transpose (wasm): original kernel missing');
    return originalTranspose(args as never) as tf.TensorInfo;
  };

  const gatherV2 = (args: KernelArgs): tf.TensorInfo | tf.TensorInfo[] => {
    const backend = asWasm(args.backend);
    const { x, indices } = args.inputs as { x: tf.TensorInfo; indices: tf.TensorInfo };
    const { axis, batchDims } = args.attrs as { axis: number; batchDims?: number };
    const h = heapOf(backend, x.dtype);
    if ((batchDims ?? 0) !== 0 || !h || indices.dtype !== 'int32') {
      if (!originalGather) throw new Error('GatherV2 (wasm): original kernel missing');
      return originalGather(args as never);
    }
    const ax = tf.util.parseAxisParam(axis, x.shape)[0]!;
    const dim = x.shape[ax]!;
    const outer = x.shape.slice(0, ax).reduce((a, b) => a * b, 1);
    const inner = x.shape.slice(ax + 1).reduce((a, b) => a * b, 1);
    const n = indices.shape.reduce((a, b) => a * b, 1);
    const outShape = [...x.shape.slice(0, ax), ...indices.shape, ...x.shape.slice(ax + 1)];
    const out = backend.makeOutput(outShape, x.dtype);
    const heap = heapOf(backend, x.dtype)!.heap;
    const ind = new Int32Array(backend.wasm.HEAPU8.buffer, dataOf(backend, indices).memoryOffset, n);
    for (let i = 0; i < n; i++) {
      const v = ind[i]!;
      if (v < 0 || v >= dim) {
        backend.disposeData(out.dataId);
        throw new Error(`GatherV2: the index value ${v} is not in [0, ${dim - 1}]`);
      }
    }
    const xo = dataOf(backend, x).memoryOffset / h.bytes;
    let dst = dataOf(backend, out).memoryOffset / h.bytes;
    if (inner === 1) {
      for (let o = 0; o < outer; o++) {
        const base = xo + o * dim;
        for (let i = 0; i < n; i++) heap[dst++] = heap[base + ind[i]!]!;
      }
    } else {
      for (let o = 0; o < outer; o++) {
        const base = xo + o * dim * inner;
        for (let i = 0; i < n; i++, dst += inner) {
          const src = base + ind[i]! * inner;
          heap.copyWithin(dst, src, src + inner);
        }
      }
    }
    return out;
  };

  return [
    { kernelName: 'Transpose', backendName: 'wasm', kernelFunc: transpose as unknown as tf.KernelFunc },
    { kernelName: 'GatherV2', backendName: 'wasm', kernelFunc: gatherV2 as unknown as tf.KernelFunc },
  ];
}
