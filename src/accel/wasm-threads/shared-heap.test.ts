// When the wasm backend cannot start on a shared heap (here: the threaded
// binary refuses to instantiate, as a later tfjs whose glue differs might),
// it starts on the plain build instead, says why, and the threaded kernels
// still run, copying their operands. This file runs in a process of its own
// (vitest's forks pool), so its wasm backend is started here, once.
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { sharedHeap, sharedHeapFailure, startWasmBackend, wasmKernelPool, wasmThreadsLine } from './index.js';
import { registerExtraKernels } from '../kernels/index.js';

describe('the wasm backend without a shared heap', () => {
  it('falls back to the plain build when the threaded one fails, and the kernels copy', async () => {
    await import('@tensorflow/tfjs-backend-wasm');
    const instantiate = WebAssembly.instantiate;
    const warn = console.warn;
    let refused = 0;
    WebAssembly.instantiate = function (this: unknown, ...args: unknown[]) {
      const imports = args[1] as { env?: { memory?: unknown } } | undefined;
      if (imports?.env?.memory instanceof WebAssembly.Memory) {
        refused++;
        return Promise.reject(new Error('refused by the test'));
      }
      return (instantiate as (...a: unknown[]) => unknown).apply(this, args);
    } as typeof WebAssembly.instantiate;
    console.warn = () => {}; // tfjs reports the failed start
    let ok: boolean;
    try {
      ok = await startWasmBackend(true);
    } finally {
      WebAssembly.instantiate = instantiate;
      console.warn = warn;
    }
    expect(refused).toBeGreaterThan(0);
    expect(ok).toBe(true);
    expect(tf.getBackend()).toBe('wasm');
    expect(sharedHeap()).toBeUndefined();
    expect(sharedHeapFailure()).toMatch(/./);
    registerExtraKernels('wasm');
    const pool = wasmKernelPool();
    expect(pool).toBeDefined();
    expect(pool!.memory.buffer).not.toBe((tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.buffer);
    expect(wasmThreadsLine()).toMatch(/copying operands \(.+\)/);
    // a product, GELU-free arithmetic and a transpose through the copying pool
    const a = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]);
    const b = tf.tensor2d([1, 0, 0, 1, 1, 1], [3, 2]);
    expect(Array.from(tf.matMul(a, b).dataSync())).toEqual([4, 5, 10, 11]);
    const big = tf.range(0, 20000, 1, 'float32').reshape([100, 200]);
    expect(Array.from(tf.add(big, big).dataSync().slice(0, 3))).toEqual([0, 2, 4]);
    expect(Array.from(tf.transpose(big).dataSync().slice(0, 3))).toEqual([0, 200, 400]);
  });
});
