import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { clearTransposeCache, ownMatMulKernelActive, transposeCacheSize } from '../../accel/kernels/index.js';
import { wasmKernelPool } from '../../accel/wasm-threads/index.js';
import { onBackend } from '../../../test/support/kernels.js';
import { built, expectSameBits, without } from '../../../test/support/native.js';
import { linear, matMul } from './functional.js';

interface Case {
  lead: [number[], number[]];
  m: number;
  k: number;
  n: number;
  tA: boolean;
  tB: boolean;
  seed: number;
}

const dims = fc.integer({ min: 1, max: 9 });
const leadArb = fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 2 });
/** Leading axes tf.matMul accepts and the fast path covers: equal, or one side all 1 / absent. */
const leadPair = fc.oneof(
  leadArb.map((l) => [l, l] as [number[], number[]]),
  leadArb.map((l) => [l, []] as [number[], number[]]),
  leadArb.map((l) => [[], l] as [number[], number[]]),
  leadArb.map((l) => [l, l.map(() => 1)] as [number[], number[]]),
);
const caseArb: fc.Arbitrary<Case> = fc.record({
  lead: leadPair,
  m: dims,
  k: dims,
  n: dims,
  tA: fc.boolean(),
  tB: fc.boolean(),
  seed: fc.integer({ min: 1, max: 1e6 }),
});

function shapes(c: Case): { a: number[]; b: number[] } {
  return {
    a: [...c.lead[0], ...(c.tA ? [c.k, c.m] : [c.m, c.k])],
    b: [...c.lead[1], ...(c.tB ? [c.n, c.k] : [c.k, c.n])],
  };
}

function values(shape: number[], seed: number): Float32Array {
  return tf.tidy(() => tf.randomUniform(shape, -1, 1, 'float32', seed).dataSync() as Float32Array);
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-4): void {
  expect(actual.length).toBe(expected.length);
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]!));
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  expect(worst).toBeLessThanOrEqual(tol * (1 + scale));
}

/** y, dL/da, dL/db for L = sum(y * up), by `mul` on the active backend. */
function run(
  mul: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor,
  a: Float32Array,
  b: Float32Array,
  s: { a: number[]; b: number[] },
  upSeed: number,
): Float32Array[] {
  return tf.tidy(() => {
    const ta = tf.tensor(a, s.a);
    const tb = tf.tensor(b, s.b);
    const y = mul(ta, tb);
    const up = tf.randomUniform(y.shape, -1, 1, 'float32', upSeed);
    const [ga, gb] = tf.grads((x: tf.Tensor, w: tf.Tensor) => tf.sum(tf.mul(mul(x, w), up)))([ta, tb]);
    return [y.dataSync() as Float32Array, ga!.dataSync() as Float32Array, gb!.dataSync() as Float32Array];
  });
}

describe('fast matMul', () => {
  it('equals tf.matMul, forward and gradients, on cpu and wasm (random shapes, transposes, broadcasts)', async () => {
    await fc.assert(
      fc.asyncProperty(caseArb, async (c) => {
        const s = shapes(c);
        const a = values(s.a, c.seed);
        const b = values(s.b, c.seed + 1);
        // reference: operands broadcast explicitly (tf.matMul's own gradient does not reduce a broadcast rank)
        const lead = c.lead[0].length >= c.lead[1].length ? c.lead[0] : c.lead[1];
        const full = (t: tf.Tensor) => tf.broadcastTo(t, [...lead, ...t.shape.slice(-2)]);
        const plain = (x: tf.Tensor, w: tf.Tensor) => tf.matMul(full(x), full(w), c.tA, c.tB);
        const fast = (x: tf.Tensor, w: tf.Tensor) => matMul(x, w, c.tA, c.tB);
        const expected = await onBackend('cpu', () => run(plain, a, b, s, c.seed + 2));
        for (const backend of ['cpu', 'wasm']) {
          const got = await onBackend(backend, () => run(fast, a, b, s, c.seed + 2));
          got.forEach((g, i) => expectClose(g, expected[i]!));
        }
        // tf.matMul itself on wasm (BatchMatMul replaced by the fast product) and its gradient
        if (tf.util.arraysEqual(c.lead[0], c.lead[1])) {
          const tfMatMul = (x: tf.Tensor, w: tf.Tensor) => tf.matMul(x, w, c.tA, c.tB);
          const viaTf = await onBackend('wasm', () => run(tfMatMul, a, b, s, c.seed + 2));
          viaTf.forEach((g, i) => expectClose(g, expected[i]!));
        }
      }),
      { numRuns: 40, seed: 7 },
    );
  });

  it('adds a bias over the last axis', async () => {
    const a = values([2, 3, 4], 1);
    const b = values([5, 4], 2);
    const bias = values([5], 3);
    const expected = await onBackend('cpu', () => tf.tidy(() => tf.add(tf.matMul(tf.tensor(a, [2, 3, 4]), tf.tensor(b, [5, 4]), false, true), tf.tensor(bias)).dataSync()));
    for (const backend of ['cpu', 'wasm']) {
      const got = await onBackend(backend, () => tf.tidy(() => matMul(tf.tensor(a, [2, 3, 4]), tf.tensor(b, [5, 4]), false, true, tf.tensor(bias)).dataSync()));
      expectClose(got, expected);
    }
  });

  it('keeps the transpose of a frozen weight and follows it when the weight is assigned', async () => {
    await onBackend('wasm', () => {
      clearTransposeCache();
      const before = tf.memory().numTensors;
      const w = tf.tidy(() => tf.variable(tf.tensor(values([6, 4], 11), [6, 4]), false));
      const x = tf.tensor(values([3, 4], 12), [3, 4]);
      const y1 = linear(x, w);
      const y2 = linear(x, w);
      // (native kernels, when built, replace this module's product, and the threaded wasm
      // product reads transposed operands in place: no transposes are kept then)
      expect(transposeCacheSize()).toBe(ownMatMulKernelActive() && !wasmKernelPool() ? 1 : 0);
      expectClose(y2.dataSync(), y1.dataSync(), 0);
      const plain1 = tf.matMul(x, w, false, true);
      expectClose(y1.dataSync(), plain1.dataSync());
      // new values: a new buffer, a new transpose
      tf.tidy(() => w.assign(tf.tensor(values([6, 4], 13), [6, 4])));
      const y3 = linear(x, w);
      const plain3 = tf.matMul(x, w, false, true);
      expectClose(y3.dataSync(), plain3.dataSync());
      tf.dispose([y1, y2, y3, plain1, plain3, x, w]);
      // the transposes are backend-private: no tensor stays behind
      expect(tf.memory().numTensors).toBe(before);
      clearTransposeCache();
      expect(transposeCacheSize()).toBe(0);
    });
  });
});

describe('linear', () => {
  it('equals x W^T + b with its gradients, frozen or trainable weight, on cpu and wasm', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({ lead: fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 3 }), inF: dims, outF: dims, bias: fc.boolean(), frozen: fc.boolean(), seed: fc.integer({ min: 1, max: 1e6 }) }),
        async (c) => {
          const xs = [...c.lead, c.inF];
          const x = values(xs, c.seed);
          const w = values([c.outF, c.inF], c.seed + 1);
          const b = values([c.outF], c.seed + 2);
          const compute = (f: (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) => tf.Tensor) =>
            tf.tidy(() => {
              const tx = tf.tensor(x, xs);
              const tw = tf.variable(tf.tensor(w, [c.outF, c.inF]), !c.frozen);
              const tb = tf.tensor(b, [c.outF]);
              const y = f(tx, tw, tb);
              const up = tf.randomUniform(y.shape, -1, 1, 'float32', c.seed + 3);
              const { grads } = tf.engine().gradients(() => tf.sum(tf.mul(f(tx, tw, tb), up)), [tx, tw, tb]);
              const out = [y, ...grads].map((t) => t!.dataSync() as Float32Array);
              tw.dispose();
              return out;
            });
          const plain = (tx: tf.Tensor, tw: tf.Tensor, tb: tf.Tensor) => {
            const y = tf.matMul(tf.reshape(tx, [-1, c.inF]), tw, false, true);
            return tf.reshape(c.bias ? tf.add(y, tb) : tf.add(y, tf.mul(tb, 0)), [...c.lead, c.outF]);
          };
          const fast = (tx: tf.Tensor, tw: tf.Tensor, tb: tf.Tensor) => (c.bias ? linear(tx, tw, tb) : tf.add(linear(tx, tw), tf.mul(tb, 0)));
          const expected = await onBackend('cpu', () => compute(plain));
          for (const backend of ['cpu', 'wasm']) {
            const got = await onBackend(backend, () => compute(fast));
            got.forEach((g, i) => expectClose(g, expected[i]!));
          }
        },
      ),
      { numRuns: 30, seed: 3 },
    );
    await onBackend('wasm', () => clearTransposeCache());
  });

  // Adapters that take over a layer compute linear(x, W) + b themselves: the
  // fused bias must join after the product's sum, not start it (a bias given to
  // the engine as C with beta 1, or XNNPACK's bias-initialised sums, differ in
  // the last bits once the sum runs in blocks over a long k). Large |b| against
  // small products makes the order show.
  it('adds its bias after the product: linear(x, W, b) equals linear(x, W) + b to the bit, native kernels on and off', async () => {
    const shapes: [number[], number, number][] = [
      [[96, 1536], 1536, 80],
      [[2, 16, 16, 192], 192, 768],
      [[3, 7, 640], 640, 33],
    ];
    const run = () =>
      shapes.map(([xs, inF, outF], i) =>
        tf.tidy(() => {
          const x = tf.randomUniform(xs, -1, 1, 'float32', 10 + i);
          const w = tf.randomUniform([outF, inF], -0.05, 0.05, 'float32', 20 + i);
          const b = tf.randomUniform([outF], -3e3, 3e3, 'float32', 30 + i);
          return [linear(x, w, b).dataSync() as Float32Array, tf.add(linear(x, w), b).dataSync() as Float32Array];
        }),
      );
    await onBackend('wasm', () => {
      const check = (label: string) => {
        const got = run();
        expectSameBits(got.map((g) => g[0]!), got.map((g) => g[1]!), label);
      };
      if (built) check('native kernels on');
      without(() => check('native kernels off'));
    });
  });
});
