// The native Sum against the backend's (native kernels off): random shapes of
// rank 1 to 5, random axis sets (contiguous blocks run natively, scattered ones
// fall back), keepDims, on cpu and on wasm; the layout rule itself.
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ensureWasmBackend, onBackend } from '../../../test/support/kernels.js';
import { registerNativeKernels } from './index.js';
import { sumLayout } from './sum-kernel.js';
import { RUNS, built, close, load, rand, whyNotBuilt, without } from '../../../test/support/native.js';

if (!built) console.log(`native Sum tests skipped: ${whyNotBuilt}`);
const wasmOk = await ensureWasmBackend();

const sumCase = fc
  .record({
    shape: fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 5 }),
    pick: fc.array(fc.boolean(), { minLength: 5, maxLength: 5 }),
    negative: fc.boolean(),
    keepDims: fc.boolean(),
    seed: fc.integer({ min: 0, max: 1e6 }),
  })
  .map((c) => {
    let axes = c.shape.map((_, i) => i).filter((i) => c.pick[i]);
    if (axes.length === 0) axes = [c.shape.length - 1];
    if (c.negative) axes = axes.map((a) => a - c.shape.length);
    return { ...c, axes };
  });

describe('sumLayout', () => {
  it('views a contiguous block of axes as [outer, reduced, inner]', () => {
    expect(sumLayout([2, 3, 4, 5], [1, 2], false)).toEqual({ dims: [2, 12, 5], out: [2, 5] });
    expect(sumLayout([2, 3, 4, 5], [-1], true)).toEqual({ dims: [24, 5, 1], out: [2, 3, 4, 1] });
    expect(sumLayout([512, 192], 0, false)).toEqual({ dims: [1, 512, 192], out: [192] });
    expect(sumLayout([2, 3, 4], [2, 0], false)).toBeUndefined();
    expect(sumLayout([2, 3], [], false)).toBeUndefined();
  });
});

describe.skipIf(!built)('native Sum', () => {
  it('equals the backend kernel on cpu (random shapes and axes, keepDims)', () => {
    fc.assert(
      fc.property(sumCase, (c) => {
        tf.tidy(() => {
          const x = rand(c.shape, c.seed, 3);
          close(tf.sum(x, c.axes, c.keepDims), without(() => tf.sum(x, c.axes, c.keepDims)), c.shape.reduce((a, b) => a * b, 1), JSON.stringify(c));
        });
      }),
      { numRuns: RUNS * 2 },
    );
  });

  it('equals the backend kernel on sizes that take the threaded path', () => {
    load.addon!.setThreads(2);
    try {
      tf.tidy(() => {
        const x = rand([64, 37, 300], 4);
        for (const axes of [[2], [1], [0, 1], [1, 2]]) close(tf.sum(x, axes), without(() => tf.sum(x, axes)), 2000, `axes ${axes}`);
      });
    } finally {
      load.addon!.setThreads((load as { threads: number }).threads);
    }
  });

  it('rejects ranges outside the arrays in C++', () => {
    const a = load.addon!;
    expect(() => a.sum(new Float32Array(12), new Float32Array(3), Int32Array.of(1, 4, 3, 0, 0))).not.toThrow();
    expect(() => a.sum(new Float32Array(11), new Float32Array(3), Int32Array.of(1, 4, 3, 0, 0))).toThrow(/outside/);
    expect(() => a.sum(new Float32Array(12), new Float32Array(3), Int32Array.of(1, 4, 3, 0, 1))).toThrow(/y.*outside/);
    expect(() => a.sum(new Float32Array(12), new Float32Array(3), Int32Array.of(1, -4, 3, 0, 0))).toThrow(/negative/);
  });
});

describe.skipIf(!built || !wasmOk)('native Sum on wasm', () => {
  it('equals the wasm kernel and the cpu reference', async () => {
    const cases = fc.sample(sumCase, RUNS);
    const reference = cases.map((c) => tf.tidy(() => without(() => tf.sum(rand(c.shape, c.seed, 3), c.axes, c.keepDims)).dataSync().slice()));
    await onBackend('wasm', () => {
      registerNativeKernels('wasm');
      cases.forEach((c, i) =>
        tf.tidy(() => {
          const x = rand(c.shape, c.seed, 3);
          const got = tf.sum(x, c.axes, c.keepDims);
          const n = c.shape.reduce((a, b) => a * b, 1);
          close(got, without(() => tf.sum(x, c.axes, c.keepDims)), n, `wasm ${JSON.stringify(c)}`);
          close(got, tf.tensor(reference[i]!, got.shape), n, `wasm vs cpu ${JSON.stringify(c)}`);
        }),
      );
    });
  });
});
