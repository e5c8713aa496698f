// Add, Sub, Multiply and RealDiv for the wasm backend on the threaded wasm
// kernels (src/accel/wasm-threads): float32 operands where each side is the
// whole output, a row over its last axis, a value per row, or one value —
// what the layers' elementwise arithmetic is. The same IEEE operation per
// element, so the results equal tfjs's own to the bit. Anything else (other
// dtypes, other broadcasts, small tensors) goes to the backend's own kernel.
import * as tf from '@tensorflow/tfjs';
import { operandOf, type BinaryOp, type PoolSource, type Side } from '../wasm-threads/index.js';
import { asWasm } from './wasm-util.js';

/** Below this many output elements the backend's own kernel is as fast. */
const MIN_ELEMENTS = 4096;

const KERNELS: Array<[string, BinaryOp]> = [
  ['Add', 'add'],
  ['Sub', 'sub'],
  ['Multiply', 'mul'],
  ['RealDiv', 'div'],
];

const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** How an operand of `shape` covers `out` (its broadcast with the other), or undefined when none of the four. */
export function sideOf(shape: readonly number[], out: readonly number[]): Side | undefined {
  const padded = [...new Array<number>(Math.max(0, out.length - shape.length)).fill(1), ...shape];
  if (padded.length !== out.length) return undefined;
  if (padded.every((d, i) => d === out[i])) return 'full';
  if (size(shape) === 1) return 'scalar';
  const last = out.length - 1;
  if (padded[last] === out[last] && padded.slice(0, last).every((d) => d === 1)) return 'row';
  if (padded[last] === 1 && padded.slice(0, last).every((d, i) => d === out[i])) return 'column';
  return undefined;
}

export function makeWasmBinaryKernels(original: (name: string) => tf.KernelFunc | undefined, poolOf: PoolSource): tf.KernelConfig[] {
  const configs: tf.KernelConfig[] = [];
  for (const [name, op] of KERNELS) {
    const fallback = original(name);
    if (!fallback) continue;
    const kernelFunc = (args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }) => {
      const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
      if (a.dtype !== 'float32' || b.dtype !== 'float32') return fallback(args as never);
      const outShape = tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
      const count = size(outShape);
      const sideA = sideOf(a.shape, outShape);
      const sideB = sideOf(b.shape, outShape);
      if (count < MIN_ELEMENTS || !sideA || !sideB) return fallback(args as never);
      const backend = asWasm(args.backend);
      const pool = poolOf();
      const out = backend.makeOutput(outShape, 'float32');
      const n = outShape.length ? outShape[outShape.length - 1]! : 1;
      pool.binary(op, operandOf(pool, backend, a), sideA, operandOf(pool, backend, b), sideB, operandOf(pool, backend, out), count, n);
      return out;
    };
    configs.push({ kernelName: name, backendName: 'wasm', kernelFunc: kernelFunc as unknown as tf.KernelFunc });
  }
  return configs;
}
