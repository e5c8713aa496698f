// The native Transpose against the backends' own (native kernels off): random
// shapes of rank 1 to 6 and random permutations, on cpu and on wasm, sizes
// that take the threaded path, and the addon's argument checks. Skipped with
// the reason when the addon is not built.
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ensureWasmBackend, onBackend } from '../../../test/support/kernels.js';
import { nativeDisabledByEnv, nativeStatus, registerNativeKernels } from './index.js';
import { RUNS, built, close, expectBuiltWhereOpenBlasIs, load, rand, whyNotBuilt, without } from '../../../test/support/native.js';

if (!built) console.log(`native transpose tests skipped: ${whyNotBuilt}`);
const wasmOk = await ensureWasmBackend();

const transposeCase = fc
  .array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 6 })
  .chain((shape) => fc.record({ shape: fc.constant(shape), perm: fc.shuffledSubarray([...shape.keys()], { minLength: shape.length }), seed: fc.integer({ min: 0, max: 1e6 }) }));

describe('native Transpose', () => {
  it.skipIf(!process.env.CI || nativeDisabledByEnv())('is built under CI when OpenBLAS is installed', () => {
    expectBuiltWhereOpenBlasIs();
  });

  it.skipIf(!built)('equals the cpu kernel (random shapes and permutations, rank 1-6)', () => {
    expect(nativeStatus('cpu').kernels).toContain('Transpose');
    fc.assert(
      fc.property(transposeCase, (c) => {
        tf.tidy(() => {
          const x = rand(c.shape, c.seed);
          close(tf.transpose(x, c.perm), without(() => tf.transpose(x, c.perm)), 0, JSON.stringify(c));
        });
      }),
      { numRuns: RUNS * 4 },
    );
  });

  it.skipIf(!built)('equals the cpu kernel on sizes that take the threaded and tiled paths', () => {
    load.addon!.setThreads(2);
    onTestFinished(() => load.addon!.setThreads((load as { threads: number }).threads));
    tf.tidy(() => {
      const x = rand([3, 37, 5, 131, 33], 1);
      for (const perm of [[2, 0, 3, 1, 4], [4, 3, 2, 1, 0], [0, 1, 2, 4, 3], [1, 4, 0, 2, 3]]) {
        close(tf.transpose(x, perm), without(() => tf.transpose(x, perm)), 0, `perm ${perm}`);
      }
      // int32 goes to the backend's kernel
      const i = tf.range(0, 60, 1, 'int32').reshape([3, 4, 5]);
      expect(tf.transpose(i, [2, 0, 1]).arraySync()).toEqual(without(() => tf.transpose(i, [2, 0, 1]).arraySync()));
    });
  });

  it.skipIf(!built)('rejects bad parameters in C++', () => {
    const a = load.addon!;
    const x = new Float32Array(24);
    const y = new Float32Array(24);
    expect(() => a.transpose(x, y, Int32Array.of(3, 0, 0, 2, 3, 4, 2, 0, 1))).not.toThrow();
    expect(() => a.transpose(x, y, Int32Array.of(3, 1, 0, 2, 3, 4, 2, 0, 1))).toThrow(/outside the array/);
    expect(() => a.transpose(x, y, Int32Array.of(3, 0, 0, 2, 3, 5, 2, 0, 1))).toThrow(/smaller than its shape/);
    expect(() => a.transpose(x, y, Int32Array.of(3, 0, 0, 2, 3, 4, 2, 2, 1))).toThrow(/permutation/);
    expect(() => a.transpose(x, y, Int32Array.of(3, 0, 0, 2, 3, 4, 2, 0))).toThrow(/params/);
    expect(() => a.transpose(x, y, Int32Array.of(9, 0, 0))).toThrow(/params/);
    expect(() => a.transpose(x, y, Int32Array.of(2, 0, 0, 65536, 65536, 1, 0))).toThrow(/smaller than its shape/);
  });

  it.skipIf(!built || !wasmOk)('equals the wasm kernels and the cpu backend, in place on the wasm heap', async () => {
    const cases = fc.sample(transposeCase, RUNS * 2);
    for (const c of cases) {
      const cpu = tf.tidy(() => without(() => tf.transpose(rand(c.shape, c.seed), c.perm).arraySync()));
      await onBackend('wasm', () => {
        registerNativeKernels('wasm');
        tf.tidy(() => {
          const x = rand(c.shape, c.seed);
          const got = tf.transpose(x, c.perm);
          close(got, tf.tensor(cpu as number[]), 0, `vs cpu ${JSON.stringify(c)}`);
          close(got, without(() => tf.transpose(x, c.perm)), 0, `vs wasm ${JSON.stringify(c)}`);
        });
      });
    }
  });
});
