// Exact GELU and its gradient (the fused kernels `PeftGelu`, `PeftGeluGrad`
// that core `geluErf` runs when they are registered) for the wasm backend, on
// the threaded wasm kernels (src/accel/wasm-threads): one pass each way over
// both cores instead of tfjs's chain of single-threaded Erf, Exp, Mul and Add.
// Registered only where that pool runs (Node); the native addon's own
// registrations replace these when it is active.
import * as tf from '@tensorflow/tfjs';
import { PEFT_GELU, PEFT_GELU_GRAD } from '../native/fused-names.js';
import { operandOf, type PoolSource } from '../wasm-threads/index.js';
import { asWasm } from './wasm-util.js';

type Args = { inputs: tf.NamedTensorInfoMap; backend: unknown };

function size(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function makeWasmGeluKernels(poolOf: PoolSource): tf.KernelConfig[] {
  const gelu = ({ inputs, backend: b }: Args) => {
    const backend = asWasm(b);
    const pool = poolOf();
    const x = inputs.x!;
    if (x.dtype !== 'float32') throw new Error(`${PEFT_GELU}: x must be float32, got ${x.dtype}`);
    const out = backend.makeOutput(x.shape, 'float32');
    pool.elementwise('gelu', [operandOf(pool, backend, x)], operandOf(pool, backend, out), size(x.shape));
    return out;
  };
  const geluGrad = ({ inputs, backend: b }: Args) => {
    const backend = asWasm(b);
    const pool = poolOf();
    const { x, dy } = inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
    if (x.dtype !== 'float32' || dy.dtype !== 'float32') throw new Error(`${PEFT_GELU_GRAD}: x and dy must be float32`);
    if (x.shape.length !== dy.shape.length || x.shape.some((d, i) => d !== dy.shape[i])) {
      throw new Error(`${PEFT_GELU_GRAD}: x ${x.shape} and dy ${dy.shape} differ`);
    }
    const out = backend.makeOutput(x.shape, 'float32');
    pool.elementwise('geluGrad', [operandOf(pool, backend, x), operandOf(pool, backend, dy)], operandOf(pool, backend, out), size(x.shape));
    return out;
  };
  return [
    { kernelName: PEFT_GELU, backendName: 'wasm', kernelFunc: gelu as unknown as tf.KernelFunc },
    { kernelName: PEFT_GELU_GRAD, backendName: 'wasm', kernelFunc: geluGrad as unknown as tf.KernelFunc },
  ];
}
