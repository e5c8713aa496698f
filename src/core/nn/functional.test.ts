import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { onBackend } from '../../../test/support/kernels.js';
import { geluErf, geluTanh, layerNorm } from './functional.js';

function values(shape: number[], seed: number, spread = 3): Float32Array {
  return tf.tidy(() => tf.randomUniform(shape, -spread, spread, 'float32', seed).dataSync() as Float32Array);
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-5): void {
  expect(actual.length).toBe(expected.length);
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    scale = Math.max(scale, Math.abs(expected[i]!));
    worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  }
  expect(worst).toBeLessThanOrEqual(tol * (1 + scale));
}

/** f(inputs) and d sum(f * up) / d inputs. */
function valueAndGrad(f: (...xs: tf.Tensor[]) => tf.Tensor, inputs: [Float32Array, number[]][], seed: number): Float32Array[] {
  return tf.tidy(() => {
    const xs = inputs.map(([v, s]) => tf.tensor(v, s));
    const y = f(...xs);
    const up = tf.randomUniform(y.shape, -1, 1, 'float32', seed);
    const { grads } = tf.engine().gradients(() => tf.sum(tf.mul(f(...xs), up)), xs);
    return [y, ...grads].map((t) => t!.dataSync() as Float32Array);
  });
}

/** The textbook forms, differentiated by autodiff. */
const plainGeluErf = (x: tf.Tensor) => tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
const plainGeluTanh = (x: tf.Tensor) =>
  tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI))), 1));
const plainLayerNorm = (x: tf.Tensor, w: tf.Tensor | undefined, b: tf.Tensor | undefined, eps: number) => {
  const axis = x.rank - 1;
  const mean = tf.mean(x, axis, true);
  const xc = tf.sub(x, mean);
  let y = tf.mul(xc, tf.rsqrt(tf.add(tf.mean(tf.square(xc), axis, true), eps)));
  if (w) y = tf.mul(y, w);
  if (b) y = tf.add(y, b);
  return y;
};

const shapeArb = fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 4 });

describe('functional forms with hand-written gradients', () => {
  it('geluErf and geluTanh equal their formulas, forward and gradient, on cpu and wasm', async () => {
    await fc.assert(
      fc.asyncProperty(shapeArb, fc.integer({ min: 1, max: 1e6 }), async (shape, seed) => {
        const x = values(shape, seed);
        for (const [fast, plain] of [
          [geluErf, plainGeluErf],
          [geluTanh, plainGeluTanh],
        ] as const) {
          const expected = await onBackend('cpu', () => valueAndGrad(plain, [[x, shape]], seed + 1));
          for (const backend of ['cpu', 'wasm']) {
            const got = await onBackend(backend, () => valueAndGrad(fast, [[x, shape]], seed + 1));
            got.forEach((g, i) => expectClose(g, expected[i]!));
          }
        }
      }),
      { numRuns: 25, seed: 21 },
    );
  });

  it('layerNorm equals its formula (with and without weight and bias), forward and gradients, on cpu and wasm', async () => {
    await fc.assert(
      fc.asyncProperty(shapeArb, fc.boolean(), fc.boolean(), fc.constantFrom(1e-5, 1e-6), fc.integer({ min: 1, max: 1e6 }), async (shape, hasW, hasB, eps, seed) => {
        const c = shape[shape.length - 1]!;
        const x = values(shape, seed);
        const w = values([c], seed + 1, 1);
        const b = values([c], seed + 2, 1);
        const inputs: [Float32Array, number[]][] = [[x, shape], ...(hasW ? [[w, [c]] as [Float32Array, number[]]] : []), ...(hasB ? [[b, [c]] as [Float32Array, number[]]] : [])];
        const split = (xs: tf.Tensor[]) => [xs[0]!, hasW ? xs[1] : undefined, hasB ? xs[hasW ? 2 : 1] : undefined] as const;
        const plain = (...xs: tf.Tensor[]) => {
          const [tx, tw, tb] = split(xs);
          return plainLayerNorm(tx, tw, tb, eps);
        };
        const fast = (...xs: tf.Tensor[]) => {
          const [tx, tw, tb] = split(xs);
          return layerNorm(tx, tw, tb, eps);
        };
        const expected = await onBackend('cpu', () => valueAndGrad(plain, inputs, seed + 3));
        for (const backend of ['cpu', 'wasm']) {
          const got = await onBackend(backend, () => valueAndGrad(fast, inputs, seed + 3));
          got.forEach((g, i) => expectClose(g, expected[i]!, 1e-4));
        }
      }),
      { numRuns: 30, seed: 22 },
    );
  });
});
