// Sum over every axis but the last (the gradient of a bias, of a per-channel
// scale) for the wasm backend, on the threaded wasm kernels
// (src/accel/wasm-threads): column sums in row order, columns over the
// threads, in place. tfjs's own Sum transposes the reduced axes to the end
// first and runs on one thread. Other reductions, dtypes and small tensors go
// to the backend's own kernel.
import * as tf from '@tensorflow/tfjs';
import { operandOf, type PoolSource } from '../wasm-threads/index.js';
import { asWasm } from './wasm-util.js';

/** Below this many input elements the backend's own kernel is as fast. */
const MIN_ELEMENTS = 4096;

/** Whether `axes` of a rank-`rank` tensor are exactly its leading axes 0 .. rank-2. */
export function leadingAxes(axes: number[], rank: number): boolean {
  if (rank < 2 || axes.length !== rank - 1) return false;
  return [...axes].sort((a, b) => a - b).every((a, i) => a === i);
}

export function makeWasmSumKernel(original: tf.KernelFunc | undefined, poolOf: PoolSource): tf.KernelConfig | undefined {
  if (!original) return undefined;
  const kernelFunc = (args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }) => {
    const x = args.inputs.x!;
    const { axis, keepDims } = args.attrs as unknown as { axis: number | number[]; keepDims: boolean };
    const rank = x.shape.length;
    const size = x.shape.reduce((a, b) => a * b, 1);
    if (x.dtype !== 'float32' || size < MIN_ELEMENTS || !leadingAxes(tf.util.parseAxisParam(axis, x.shape), rank)) return original(args as never);
    const n = x.shape[rank - 1]!;
    const backend = asWasm(args.backend);
    const pool = poolOf();
    const out = backend.makeOutput(keepDims ? [...new Array<number>(rank - 1).fill(1), n] : [n], 'float32');
    pool.columnSums(operandOf(pool, backend, x), operandOf(pool, backend, out), size / n, n);
    return out;
  };
  return { kernelName: 'Sum', backendName: 'wasm', kernelFunc: kernelFunc as unknown as tf.KernelFunc };
}
