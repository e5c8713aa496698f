// Extra kernels for the wasm backend, registered once the backend is in use:
// the gradient kernels it lacks (convolution filter and depthwise gradients,
// UnsortedSegmentSum for gather's gradient), cheap data movement (Identity,
// Slice, SplitV, Unpack, Transpose of rank 5+, GatherV2), the fast matrix product `PeftMatMul` that core
// `matMul`/`linear` use on wasm, and BatchMatMul replaced by the same fast
// product; where the threaded wasm kernels run (src/accel/wasm-threads), also
// GELU and layer norm each way, Add/Sub/Multiply/RealDiv, Sum over the
// leading axes and Transpose on them. Other backends are left as they are.
import * as tf from '@tensorflow/tfjs';
import { makeCopyKernels } from './wasm-copy-kernels.js';
import { convGradKernels, makeConvGradKernels } from './wasm-conv-grads.js';
import { makeLayoutKernels } from './wasm-layout-kernels.js';
import { makeBatchMatMulKernel, peftMatMulGradient, peftMatMulKernel } from './wasm-matmul.js';
import { segmentKernels } from './wasm-segment.js';
import { makeWasmBinaryKernels } from './wasm-binary.js';
import { makeWasmGeluKernels } from './wasm-gelu.js';
import { makeWasmLayerNormKernels } from './wasm-layer-norm.js';
import { makeWasmSumKernel } from './wasm-sum.js';
import { requireKernelPool, wasmThreadsEnabled } from '../wasm-threads/index.js';
import { installSharedSave } from './shared-save.js';

export { pruneTape, valueAndGradsLowMemory } from './backprop.js';
export { installSharedSave, uninstallSharedSave } from './shared-save.js';
export { PEFT_MATMUL, clearTransposeCache, productLead, runPeftMatMul, transposeCacheSize, type PeftMatMulAttrs } from './wasm-matmul.js';

/** The kernels this module registers for the wasm backend, by name (for `peft env` and tests). */
export const WASM_EXTRA_KERNELS = [
  'Conv2DBackpropFilter',
  'Conv2DBackpropInput',
  'DepthwiseConv2dNativeBackpropInput',
  'DepthwiseConv2dNativeBackpropFilter',
  'UnsortedSegmentSum',
  'Identity',
  'Slice',
  'SplitV',
  'Unpack',
  'Transpose',
  'GatherV2',
  'BatchMatMul',
  'PeftMatMul',
] as const;

let wasmDone = false;
let gradientDone = false;

function register(config: tf.KernelConfig): void {
  // replacing one of the backend's own kernels: unregister first (no warning)
  try {
    tf.getKernel(config.kernelName, config.backendName);
    tf.unregisterKernel(config.kernelName, config.backendName);
  } catch {
    /* not registered */
  }
  tf.registerKernel(config);
}

/**
 * `PEFT_WASM_FAST=0` keeps tfjs-backend-wasm's own kernels and registers only
 * the missing gradient kernels (plain JS forms): the "before" of the benchmark,
 * and a way to rule the fast paths out when chasing a problem.
 */
export function wasmFastPathsEnabled(): boolean {
  return typeof process === 'undefined' || process.env?.PEFT_WASM_FAST !== '0';
}

function registerWasmKernels(): void {
  if (wasmDone) return;
  // the wasm backend's kernels must be registered already (its package imported), or they would replace ours later
  if (!tf.getKernelsForBackend('wasm').some((k) => k.kernelName === 'BatchMatMul')) return;
  if (!wasmFastPathsEnabled()) {
    for (const k of [...convGradKernels, ...segmentKernels]) register(k);
    wasmDone = true;
    return;
  }
  const original = (name: string) => {
    try {
      return tf.getKernel(name, 'wasm')?.kernelFunc;
    } catch {
      return undefined;
    }
  };
  // the threaded kernels' pool starts on their first call (never, where the native kernels replace them)
  const pool = wasmThreadsEnabled() ? requireKernelPool : undefined;
  const batchMatMul = makeBatchMatMulKernel(original('BatchMatMul'));
  const layout = makeLayoutKernels(original, pool);
  for (const k of makeCopyKernels(original)) register(k);
  for (const k of layout) register(k);
  register(batchMatMul);
  const convGrads = makeConvGradKernels(original);
  for (const k of [...convGrads, ...segmentKernels, peftMatMulKernel]) register(k);
  if (pool) {
    const sum = makeWasmSumKernel(original('Sum'), pool);
    for (const k of [...makeWasmGeluKernels(pool), ...makeWasmLayerNormKernels(pool), ...makeWasmBinaryKernels(original, pool), ...(sum ? [sum] : [])]) register(k);
  }
  wasmDone = true;
}

function registerGradients(): void {
  if (gradientDone) return;
  tf.registerGradient(peftMatMulGradient);
  gradientDone = true;
}

/**
 * Registers the extra kernels for the active backend (called by `initBackend`
 * after it chose one), and on every backend the gradients it adds and the
 * shared save of tensors for the backward pass (shared-save.ts). Idempotent.
 */
export function registerExtraKernels(active: string = tf.getBackend()): void {
  registerGradients();
  installSharedSave();
  if (active === 'wasm') registerWasmKernels();
}

/**
 * Whether the `PeftMatMul` registered for wasm is this module's (another
 * module — native kernels — may replace it after us).
 */
export function ownMatMulKernelActive(): boolean {
  try {
    return tf.getKernel(peftMatMulKernel.kernelName, 'wasm')?.kernelFunc === peftMatMulKernel.kernelFunc;
  } catch {
    return false;
  }
}

/** True when the active backend is wasm with the extra kernels registered (registering them if needed). */
export function wasmKernelsActive(): boolean {
  if (tf.getBackend() !== 'wasm') return false;
  if (!wasmDone || !gradientDone) registerExtraKernels('wasm');
  return wasmDone && wasmFastPathsEnabled();
}
