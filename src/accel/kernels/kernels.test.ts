// The wasm kernels registered here against the cpu backend's: gradient
// kernels (convolution, depthwise, segment sum) and the data-movement ones
// (identity, slice, split, unstack, transpose, gather).
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { convGradTuning } from './wasm-conv-grads.js';
import { collapseTranspose } from './wasm-layout-kernels.js';
import { onBackend } from '../../../test/support/kernels.js';

function values(shape: number[], seed: number): Float32Array {
  return tf.tidy(() => tf.randomUniform(shape, -1, 1, 'float32', seed).dataSync() as Float32Array);
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-4): void {
  expect(actual.length).toBe(expected.length);
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    scale = Math.max(scale, Math.abs(expected[i]!));
    worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  }
  expect(worst).toBeLessThanOrEqual(tol * (1 + scale));
}

/** The same computation on cpu and on wasm: outputs equal within float32 tolerance. */
async function sameOnBoth(f: () => tf.Tensor[], tol = 1e-4): Promise<void> {
  const read = () => tf.tidy(() => f().map((t) => t.dataSync().slice()));
  const expected = await onBackend('cpu', read);
  const got = await onBackend('wasm', read);
  expect(got.length).toBe(expected.length);
  got.forEach((g, i) => expectClose(g as Float32Array, expected[i] as Float32Array, tol));
}

const padArb = fc.oneof(fc.constant<'same'>('same'), fc.constant<'valid'>('valid'), fc.integer({ min: 0, max: 2 }));

describe('wasm gradient kernels equal the cpu backend', () => {
  it('conv2d: input and filter gradients (any size, stride, padding)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          b: fc.integer({ min: 1, max: 2 }),
          h: fc.integer({ min: 3, max: 9 }),
          w: fc.integer({ min: 3, max: 9 }),
          ci: fc.integer({ min: 1, max: 5 }),
          co: fc.integer({ min: 1, max: 5 }),
          k: fc.integer({ min: 1, max: 3 }),
          stride: fc.integer({ min: 1, max: 2 }),
          pad: padArb,
          chunked: fc.boolean(),
          seed: fc.integer({ min: 1, max: 1e6 }),
        }),
        async (c) => {
          // a small gather buffer makes the filter gradient run in several chunks
          convGradTuning.chunkElements = c.chunked ? 7 * c.ci : 4 << 20;
          const xs = [c.b, c.h, c.w, c.ci];
          const ws = [c.k, c.k, c.ci, c.co];
          const x = values(xs, c.seed);
          const w = values(ws, c.seed + 1);
          await sameOnBoth(() => {
            const tx = tf.tensor4d(x, xs as [number, number, number, number]);
            const tw = tf.tensor4d(w, ws as [number, number, number, number]);
            const f = (a: tf.Tensor4D, b: tf.Tensor4D) => tf.conv2d(a, b, c.stride, c.pad);
            const y = f(tx, tw);
            const up = tf.randomUniform(y.shape, -1, 1, 'float32', c.seed + 2);
            const [gx, gw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(f(a as tf.Tensor4D, b as tf.Tensor4D), up)))([tx, tw]);
            return [y, gx!, gw!];
          });
        },
      ),
      { numRuns: 25, seed: 1 },
    );
    convGradTuning.chunkElements = 4 << 20;
  });

  it('depthwise conv2d: input and filter gradients (multiplier, stride, padding)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          b: fc.integer({ min: 1, max: 2 }),
          h: fc.integer({ min: 4, max: 9 }),
          w: fc.integer({ min: 4, max: 9 }),
          c: fc.integer({ min: 1, max: 5 }),
          mult: fc.integer({ min: 1, max: 2 }),
          k: fc.integer({ min: 1, max: 3 }),
          stride: fc.integer({ min: 1, max: 2 }),
          pad: padArb,
          seed: fc.integer({ min: 1, max: 1e6 }),
        }),
        async (c) => {
          const xs = [c.b, c.h, c.w, c.c] as [number, number, number, number];
          const ws = [c.k, c.k, c.c, c.mult] as [number, number, number, number];
          const x = values(xs, c.seed);
          const w = values(ws, c.seed + 1);
          await sameOnBoth(() => {
            const tx = tf.tensor4d(x, xs);
            const tw = tf.tensor4d(w, ws);
            const f = (a: tf.Tensor, b: tf.Tensor) => tf.depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.stride, c.pad);
            const y = f(tx, tw);
            const up = tf.randomUniform(y.shape, -1, 1, 'float32', c.seed + 2);
            const [gx, gw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(f(a, b), up)))([tx, tw]);
            return [y, gx!, gw!];
          });
        },
      ),
      { numRuns: 25, seed: 2 },
    );
  });

  it('gather and its gradient (UnsortedSegmentSum)', async () => {
    const x = values([5, 7, 3], 4);
    const idx = [0, 6, 2, 2, 5, 1, 6, 6];
    for (const axis of [0, 1, 2]) {
      await sameOnBoth(() => {
        const tx = tf.tensor3d(x, [5, 7, 3]);
        const ind = tf.tensor1d(idx.map((i) => i % tx.shape[axis]!), 'int32');
        const y = tf.gather(tx, ind, axis);
        const up = tf.randomUniform(y.shape, -1, 1, 'float32', 5);
        const g = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.gather(a, ind, axis), up)))(tx);
        return [y, g];
      });
    }
  });
});

describe('wasm data-movement kernels equal the cpu backend', () => {
  it('slice, split, unstack, clone (identity) on random shapes', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 5 }).chain((shape) =>
          fc.record({
            shape: fc.constant(shape),
            begin: fc.tuple(...shape.map((d) => fc.integer({ min: 0, max: d - 1 }))),
            frac: fc.tuple(...shape.map(() => fc.double({ min: 0, max: 1, noNaN: true }))),
            axis: fc.integer({ min: 0, max: shape.length - 1 }),
            seed: fc.integer({ min: 1, max: 1e6 }),
          }),
        ),
        async (c) => {
          const x = values(c.shape, c.seed);
          const size = c.shape.map((d, i) => Math.max(1, Math.round((d - c.begin[i]!) * c.frac[i]!)));
          await sameOnBoth(() => {
            const t = tf.tensor(x, c.shape);
            const d = c.shape[c.axis]!;
            const parts = d > 1 ? tf.split(t, [1, d - 1], c.axis) : [tf.clone(t)];
            return [tf.slice(t, c.begin, size), ...parts, ...tf.unstack(t, c.axis), tf.clone(t)];
          }, 0);
        },
      ),
      { numRuns: 40, seed: 3 },
    );
  });

  it('transpose of rank 1 to 6, any permutation (merged axes, run copies, the C++ kernel)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 6 }).chain((shape) =>
          fc.record({
            shape: fc.constant(shape),
            perm: fc.shuffledSubarray([...shape.keys()], { minLength: shape.length, maxLength: shape.length }),
            seed: fc.integer({ min: 1, max: 1e6 }),
          }),
        ),
        async (c) => {
          const x = values(c.shape, c.seed);
          await sameOnBoth(() => {
            const t = tf.tensor(x, c.shape);
            const y = tf.transpose(t, c.perm);
            expect(y.shape).toEqual(c.perm.map((a) => c.shape[a]));
            return [y, tf.transpose(tf.cast(t, 'int32'), c.perm)];
          }, 0);
        },
      ),
      { numRuns: 60, seed: 4 },
    );
  });

  it('collapses a transpose to the fewest axes', () => {
    expect(collapseTranspose([2, 3, 4, 5], [0, 1, 3, 2])).toEqual({ shape: [6, 4, 5], perm: [0, 2, 1] });
    expect(collapseTranspose([8, 196, 5, 3, 32], [3, 0, 2, 1, 4])).toEqual({ shape: [8, 196, 5, 3, 32], perm: [3, 0, 2, 1, 4] });
    expect(collapseTranspose([1, 4, 1, 6], [2, 3, 0, 1])).toEqual({ shape: [4, 6], perm: [1, 0] });
    expect(collapseTranspose([3, 4], [0, 1])).toEqual({ shape: [12], perm: [0] });
  });
});
