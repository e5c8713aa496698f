// The threaded wasm kernels as the wasm backend runs them: the backend started
// on a shared heap (so the kernels work on tensors in place), Add / Sub /
// Multiply / RealDiv equal to the cpu backend's to the bit, GELU and layer
// norm with their gradients (PeftGelu, PeftGeluGrad, PeftLayerNorm,
// PeftLayerNormGrad) within float32 rounding of the composite forms, and
// matrix products (batches, transposes, a shared side) against cpu.
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { geluErf, layerNorm } from '../../core/nn/functional.js';
import { PEFT_GELU, PEFT_GELU_GRAD, PEFT_LAYER_NORM, PEFT_LAYER_NORM_GRAD } from '../native/fused-names.js';
import { sharedHeap, sharedHeapFailure, wasmKernelPool, wasmThreadsEnabled } from '../wasm-threads/index.js';
import { ensureWasmBackend, onBackend } from '../../../test/support/kernels.js';
import { sideOf } from './wasm-binary.js';
import { leadingAxes } from './wasm-sum.js';

const wasmOk = await ensureWasmBackend();
const threaded = wasmOk && wasmThreadsEnabled();

function values(shape: number[], seed: number, lo = -1, hi = 1): Float32Array {
  return tf.tidy(() => tf.randomUniform(shape, lo, hi, 'float32', seed).dataSync() as Float32Array);
}

async function onBoth<T>(f: () => T): Promise<[T, T]> {
  return [await onBackend('cpu', f), await onBackend('wasm', f)];
}

describe('threaded wasm kernels on the backend heap', () => {
  it.skipIf(!wasmOk)('the wasm backend runs on a shared heap, and the kernels on it (unless PEFT_WASM_THREADS=0)', async () => {
    if (!wasmThreadsEnabled()) {
      expect(sharedHeap()).toBeUndefined();
      return;
    }
    expect(sharedHeapFailure()).toBeUndefined();
    const heap = sharedHeap();
    expect(heap?.memory.buffer).toBeInstanceOf(SharedArrayBuffer);
    await onBackend('wasm', () => {
      expect((tf.backend() as unknown as { wasm: unknown }).wasm).toBe(heap!.module);
      expect(wasmKernelPool()?.memory).toBe(heap!.memory);
      for (const name of ['Add', 'Sub', 'Multiply', 'RealDiv', PEFT_GELU, PEFT_GELU_GRAD, PEFT_LAYER_NORM, PEFT_LAYER_NORM_GRAD]) expect(tf.getKernel(name, 'wasm'), name).toBeDefined();
    });
  });

  it('classifies how a side covers the output', () => {
    expect(sideOf([4, 5], [4, 5])).toBe('full');
    expect(sideOf([5], [4, 5])).toBe('row');
    expect(sideOf([1, 1, 5], [2, 4, 5])).toBe('row');
    expect(sideOf([2, 4, 1], [2, 4, 5])).toBe('column');
    expect(sideOf([], [2, 4, 5])).toBe('scalar');
    expect(sideOf([1, 1], [2, 4, 5])).toBe('scalar');
    expect(sideOf([2, 1, 5], [2, 4, 5])).toBeUndefined();
    expect(sideOf([4, 1], [4, 1])).toBe('full');
  });

  it.skipIf(!threaded)('Add, Sub, Multiply and RealDiv equal the cpu backend to the bit (every side kind, both orders)', async () => {
    const ops: Array<(a: tf.Tensor, b: tf.Tensor) => tf.Tensor> = [tf.add, tf.sub, tf.mul, tf.div];
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          lead: fc.array(fc.integer({ min: 1, max: 12 }), { minLength: 1, maxLength: 3 }),
          n: fc.integer({ min: 1, max: 200 }),
          kind: fc.constantFrom('full', 'row', 'column', 'scalar'),
          swap: fc.boolean(),
          op: fc.integer({ min: 0, max: 3 }),
          seed: fc.integer({ min: 1, max: 1e6 }),
        }),
        async (c) => {
          const out = [...c.lead, c.n];
          const other = c.kind === 'full' ? out : c.kind === 'row' ? [c.n] : c.kind === 'column' ? [...c.lead, 1] : [];
          const x = values(out, c.seed);
          const y = values(other, c.seed + 1, 0.5, 2);
          const [cpu, wasm] = await onBoth(() =>
            tf.tidy(() => {
              const a = tf.tensor(x, out);
              const b = tf.tensor(y, other);
              return ops[c.op]!(c.swap ? b : a, c.swap ? a : b).dataSync().slice();
            }),
          );
          expect(Buffer.from(wasm.buffer).equals(Buffer.from(cpu.buffer)), JSON.stringify(c)).toBe(true);
        },
      ),
      { numRuns: 40 },
    );
  });

  it.skipIf(!threaded)('GELU and its gradient on the fused kernels within float32 rounding of the composite form on cpu', async () => {
    const shape = [3, 97, 65];
    const x = values(shape, 5, -6, 6);
    const dy = values(shape, 6);
    const run = () =>
      tf.tidy(() => {
        const xt = tf.tensor(x, shape);
        const { value, grads } = tf.valueAndGrads((t: tf.Tensor) => tf.sum(tf.mul(geluErf(t), tf.tensor(dy, shape))))([xt]);
        return [tf.tidy(() => geluErf(xt)).dataSync().slice(), grads[0]!.dataSync().slice(), value.dataSync().slice()];
      });
    const kernelUsed = await onBackend('wasm', () => tf.getKernel(PEFT_GELU, 'wasm') !== undefined);
    expect(kernelUsed).toBe(true);
    const [cpu, wasm] = await onBoth(run);
    for (let k = 0; k < 2; k++) {
      let worst = 0;
      for (let i = 0; i < cpu[k]!.length; i++) worst = Math.max(worst, Math.abs(wasm[k]![i]! - cpu[k]![i]!));
      expect(worst, k ? 'gradient' : 'value').toBeLessThan(2e-6);
    }
  });

  it.skipIf(!threaded)('layer norm and its gradients on the fused kernels within float32 rounding of the composite form on cpu', async () => {
    for (const [affine, shape] of [[true, [2, 37, 192]], [false, [300, 7]]] as Array<[boolean, number[]]>) {
      const n = shape[shape.length - 1]!;
      const x = values(shape, 7, -3, 5);
      const dy = values(shape, 8);
      const w = values([n], 9);
      const b = values([n], 10);
      const run = () =>
        tf.tidy(() => {
          const xt = tf.tensor(x, shape);
          const [wt, bt] = [tf.tensor(w, [n]), tf.tensor(b, [n])];
          const loss = (xi: tf.Tensor, wi?: tf.Tensor, bi?: tf.Tensor) => tf.sum(tf.mul(layerNorm(xi, wi, bi, 1e-6), tf.tensor(dy, shape)));
          const { grads } = affine ? tf.valueAndGrads((xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) => loss(xi, wi, bi))([xt, wt, bt]) : tf.valueAndGrads((xi: tf.Tensor) => loss(xi))([xt]);
          const y = layerNorm(xt, affine ? wt : undefined, affine ? bt : undefined, 1e-6);
          return [y, ...grads].map((t) => t.dataSync().slice());
        });
      expect(await onBackend('wasm', () => tf.getKernel(PEFT_LAYER_NORM, 'wasm') !== undefined)).toBe(true);
      const [cpu, wasm] = await onBoth(run);
      cpu.forEach((c, k) => {
        let worst = 0;
        let scale = 0;
        for (let i = 0; i < c.length; i++) {
          worst = Math.max(worst, Math.abs(wasm[k]![i]! - c[i]!));
          scale = Math.max(scale, Math.abs(c[i]!));
        }
        expect(worst, `${affine} output ${k}`).toBeLessThan(1e-5 * Math.max(1, scale));
      });
    }
  });

  it.skipIf(!threaded)('Sum over the leading axes equals the cpu backend within float32 rounding (keepDims or not); other sums are untouched', async () => {
    expect(leadingAxes([0, 1], 3)).toBe(true);
    expect(leadingAxes([1, 0], 3)).toBe(true);
    expect(leadingAxes([0], 3)).toBe(false);
    expect(leadingAxes([1, 2], 3)).toBe(false);
    for (const [shape, axes, keep] of [
      [[512, 192], [0], false],
      [[2, 16, 16, 48], [0, 1, 2], true],
      [[3, 70, 37], [1, 0], false],
      [[40, 30, 20], [2], false],
    ] as Array<[number[], number[], boolean]>) {
      const x = values(shape, 11);
      const [cpu, wasm] = await onBoth(() => tf.tidy(() => {
        const s = tf.sum(tf.tensor(x, shape), axes, keep);
        return { shape: s.shape, data: s.dataSync().slice() };
      }));
      expect(wasm.shape).toEqual(cpu.shape);
      let worst = 0;
      for (let i = 0; i < cpu.data.length; i++) worst = Math.max(worst, Math.abs(wasm.data[i]! - cpu.data[i]!));
      expect(worst, JSON.stringify(shape)).toBeLessThan(2e-5 * Math.sqrt(x.length));
    }
  });

  it.skipIf(!threaded)('Transpose of float32 and int32 equals the cpu backend exactly (rank 2-6)', async () => {
    for (const [shape, perm] of [
      [[512, 192], [1, 0]],
      [[8, 3, 64, 64], [0, 2, 1, 3]],
      [[8, 64, 3, 3, 64], [2, 0, 3, 1, 4]],
      [[2, 16, 16, 16, 16, 3], [5, 0, 1, 3, 2, 4]],
      [[7, 33, 29], [2, 1, 0]],
    ] as Array<[number[], number[]]>) {
      const x = values(shape, 12);
      for (const dtype of ['float32', 'int32'] as const) {
        const [cpu, wasm] = await onBoth(() => tf.tidy(() => tf.transpose(tf.tensor(dtype === 'int32' ? x.map((v) => Math.round(v * 1000)) : x, shape, dtype), perm).dataSync().slice()));
        expect(Buffer.from(wasm.buffer).equals(Buffer.from(cpu.buffer)), `${dtype} ${JSON.stringify(shape)} ${perm}`).toBe(true);
      }
    }
  });

  it.skipIf(!threaded)('matrix products equal the cpu backend within float32 rounding (batches, transposes, a shared side)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          batch: fc.integer({ min: 1, max: 5 }),
          shared: fc.constantFrom('none', 'a', 'b'),
          m: fc.integer({ min: 1, max: 90 }),
          k: fc.integer({ min: 1, max: 300 }),
          n: fc.integer({ min: 1, max: 90 }),
          ta: fc.boolean(),
          tb: fc.boolean(),
          seed: fc.integer({ min: 1, max: 1e6 }),
        }),
        async (c) => {
          const aShape = [c.shared === 'a' ? 1 : c.batch, ...(c.ta ? [c.k, c.m] : [c.m, c.k])];
          const bShape = [c.shared === 'b' ? 1 : c.batch, ...(c.tb ? [c.n, c.k] : [c.k, c.n])];
          const av = values(aShape, c.seed);
          const bv = values(bShape, c.seed + 1);
          const [cpu, wasm] = await onBoth(() => tf.tidy(() => tf.matMul(tf.tensor(av, aShape), tf.tensor(bv, bShape), c.ta, c.tb).dataSync().slice()));
          let worst = 0;
          for (let i = 0; i < cpu.length; i++) worst = Math.max(worst, Math.abs(wasm[i]! - cpu[i]!));
          expect(worst, JSON.stringify(c)).toBeLessThan(2e-6 * c.k);
        },
      ),
      { numRuns: 60 },
    );
  });
});
