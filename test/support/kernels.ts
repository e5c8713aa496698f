// Running code on a given backend and coming back (tests compare the wasm
// backend with the cpu one inside one process).
import * as tf from '@tensorflow/tfjs';
import { registerExtraKernels } from '../../src/accel/kernels/index.js';
import { startWasmBackend, wasmThreadsEnabled } from '../../src/accel/wasm-threads/index.js';

let wasmState: Promise<boolean> | undefined;

/** Loads tfjs-backend-wasm (once); false when it cannot run here. */
export function ensureWasmBackend(): Promise<boolean> {
  wasmState ??= (async () => {
    try {
      await import('@tensorflow/tfjs-backend-wasm');
      const previous = tf.getBackend();
      const ok = await startWasmBackend(wasmThreadsEnabled());
      if (ok) registerExtraKernels('wasm');
      if (previous) await tf.setBackend(previous);
      return ok;
    } catch {
      return false;
    }
  })();
  return wasmState;
}

/** Runs `fn` with `name` as the active backend, then restores the previous one. */
export async function onBackend<T>(name: string, fn: () => T | Promise<T>): Promise<T> {
  if (name === 'wasm' && !(await ensureWasmBackend())) throw new Error('the wasm backend is not available');
  const previous = tf.getBackend();
  if (previous !== name) await tf.setBackend(name);
  if (name === 'wasm') registerExtraKernels('wasm');
  try {
    return await fn();
  } finally {
    if (previous && previous !== name) await tf.setBackend(previous);
  }
}
