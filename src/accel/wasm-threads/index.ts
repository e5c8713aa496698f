// The wasm path's threaded kernels (pool.ts): one pool per process, started by
// the first kernel that asks, on the wasm backend's shared heap when it
// started on one (shared-heap.ts), else on a memory of its own.
//
// PEFT_WASM_THREADS=0 turns them off (tfjs-backend-wasm's own kernels and its
// plain build again). Their thread count is the native kernels'
// (PEFT_NATIVE_THREADS, else OPENBLAS_NUM_THREADS, else the cores; 1 under
// vitest).
import type * as tf from '@tensorflow/tfjs';
import { nativeThreadCount } from '../native/addon.js';
import { WasmKernelPool, type Operand } from './pool.js';
import { sharedHeap, sharedHeapFailure } from './shared-heap.js';

export { WasmKernelPool, splitWork, type BinaryOp, type ElementwiseKind, type Operand, type Product, type Side } from './pool.js';
export { sharedHeap, sharedHeapFailure, startWasmBackend } from './shared-heap.js';

let pool: WasmKernelPool | undefined;
let failed: string | undefined;

/** Whether the threaded wasm kernels may run here (env, runtime). */
export function wasmThreadsEnabled(): boolean {
  if (typeof process === 'undefined' || process.env?.PEFT_WASM_THREADS?.trim() === '0') return false;
  return typeof SharedArrayBuffer !== 'undefined' && typeof Atomics !== 'undefined' && failed === undefined;
}

/** The process's pool, started on first use; undefined when turned off or unavailable. */
export function wasmKernelPool(): WasmKernelPool | undefined {
  if (pool) return pool;
  if (!wasmThreadsEnabled()) return undefined;
  try {
    pool = new WasmKernelPool(nativeThreadCount(), sharedHeap());
  } catch (err) {
    // e.g. a runtime without wasm threads or SIMD: tfjs's own kernels stay
    failed = err instanceof Error ? err.message : String(err);
    return undefined;
  }
  return pool;
}

/** Where kernels find the pool: called on each call (the pool starts on the first). */
export type PoolSource = () => WasmKernelPool;

/** The pool, or a one-line error naming why it could not start. */
export function requireKernelPool(): WasmKernelPool {
  const p = wasmKernelPool();
  if (!p) throw new Error(`wasm kernels: the threaded pool could not start (${failed ?? 'turned off by PEFT_WASM_THREADS=0 after the kernels were registered'})`);
  return p;
}

/** Why the pool could not start (undefined when it did or was not tried). */
export function wasmKernelPoolFailure(): string | undefined {
  return failed;
}

interface HeapTensors {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
}

/**
 * A wasm backend tensor as a pool operand: its byte offset when the pool runs
 * on the backend's heap, else a view of its data (copied by the pool).
 */
export function operandOf(p: WasmKernelPool, backend: unknown, t: tf.TensorInfo): Operand {
  const b = backend as HeapTensors;
  const d = b.dataIdMap.get(t.dataId);
  if (!d) throw new Error('wasm kernel: tensor data not found (disposed?)');
  const heap = sharedHeap();
  if (heap && heap.module === b.wasm && p.memory === heap.memory) return d.memoryOffset;
  const size = t.shape.reduce((x, y) => x * y, 1);
  return new Float32Array(b.wasm.HEAPU8.buffer, d.memoryOffset, size);
}

/** One line for `peft env`: whether the threaded kernels run, on how many threads, in place or copying. */
export function wasmThreadsLine(): string {
  if (typeof process !== 'undefined' && process.env?.PEFT_WASM_THREADS?.trim() === '0') return 'threaded kernels off (PEFT_WASM_THREADS=0)';
  const p = wasmKernelPool();
  if (!p) return `threaded kernels off (${failed ?? 'no SharedArrayBuffer here'})`;
  const heap = sharedHeap();
  const where = heap && p.memory === heap.memory ? "in place on the backend's shared heap" : `copying operands (${sharedHeapFailure() ?? 'the backend is not on a shared heap'})`;
  return `threaded kernels on ${p.threads} thread${p.threads === 1 ? '' : 's'}, ${where}`;
}
