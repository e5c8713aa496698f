import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { tf, valueAndGrads } from '../../src/index.js';
import { seededValues } from '../../test/support/reference-math.js';
import { without } from '../../test/support/native.js';
import { orthogonalRegulariser } from './regulariser.js';

interface Pair {
  A: tf.Tensor2D;
  B: tf.Tensor2D;
}

/** The regulariser as the reference writes it, differentiated by the tape (its gradient is NaN at a zero norm). */
function taped(pairs: Pair[], weight: number): tf.Scalar {
  let sum: tf.Scalar = tf.scalar(0);
  for (const { A, B } of pairs) {
    for (const gram of [tf.matMul(A, A, false, true), tf.matMul(B, B, true, false)]) {
      const r = gram.shape[0];
      if (r > 0) sum = tf.add(sum, tf.sqrt(tf.sum(tf.square(tf.sub(gram, tf.eye(r))))));
    }
  }
  return tf.div(tf.mul(sum, weight), 2 * pairs.length);
}

const pairsArb = fc.array(
  fc.record({ r: fc.integer({ min: 0, max: 5 }), inF: fc.integer({ min: 1, max: 12 }), outF: fc.integer({ min: 1, max: 12 }), seed: fc.integer({ min: 1, max: 1e6 }) }),
  { minLength: 1, maxLength: 5 },
);

function values(n: number, seed: number): Float32Array {
  const next = seededValues(seed);
  return Float32Array.from({ length: n }, () => next(-0.5, 0.5));
}

function makePairs(specs: { r: number; inF: number; outF: number; seed: number }[]): Pair[] {
  return specs.map(({ r, inF, outF, seed }) => ({
    A: tf.tensor2d(values(r * inF, seed), [r, inF]),
    B: tf.tensor2d(values(outF * r, seed + 1), [outF, r]),
  }));
}

describe('orthogonalRegulariser', () => {
  // the norms on the native kernels (accumulated in double) where they are registered, else their composite
  // form: the value to float32 rounding either way
  it.each([
    ['as it runs', (f: () => void) => f()],
    ['with the native kernels off', (f: () => void) => without(f)],
  ])('equals the taped formula (%s): the value and the gradients (any dy) to float32 rounding', (_, run) => {
    fc.assert(
      fc.property(pairsArb, fc.constantFrom(0.1, 1, 0.37), fc.constantFrom(1, 3, -0.5), (specs, weight, dyScale) => {
        run(() => tf.tidy(() => {
          const pairs = makePairs(specs);
          const xs = pairs.flatMap((p) => [p.A, p.B]);
          // the trainer's backward pass (a factor of rank 0 gets a zero gradient)
          const ours = valueAndGrads(() => tf.mul(orthogonalRegulariser(pairs, weight), dyScale) as tf.Scalar, xs);
          const want = valueAndGrads(() => tf.mul(taped(pairs, weight), dyScale) as tf.Scalar, xs);
          const [v, vw] = [ours.value.dataSync()[0]!, want.value.dataSync()[0]!];
          expect(Math.abs(v - vw)).toBeLessThanOrEqual(1e-6 * Math.abs(vw));
          for (const [i, g] of ours.grads.entries()) {
            const w = want.grads[i]!;
            expect(g.shape).toEqual(w.shape);
            const a = g.dataSync();
            const b = w.dataSync();
            for (let k = 0; k < a.length; k++) expect(Math.abs(a[k]! - b[k]!)).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(b[k]!)));
          }
        }));
      }),
      { numRuns: 60 },
    );
  });

  it('is 0 with zero, finite gradients where a factor is orthonormal; the other factors keep theirs', () => {
    tf.tidy(() => {
      const A = tf.eye(3, 5) as tf.Tensor2D; // orthonormal rows
      const B = tf.eye(4, 3) as tf.Tensor2D; // orthonormal columns
      const A2 = tf.tensor2d(values(2 * 4, 7), [2, 4]);
      const B2 = tf.tensor2d(values(6 * 2, 8), [6, 2]);
      const { value, grads } = valueAndGrads(() => orthogonalRegulariser([{ A, B }, { A: A2, B: B2 }], 0.1), [A, B, A2, B2]);
      const alone = orthogonalRegulariser([{ A, B }], 0.1);
      expect(alone.dataSync()[0]).toBe(0);
      expect(value.dataSync()[0]).toBeGreaterThan(0);
      expect([...grads[0]!.dataSync(), ...grads[1]!.dataSync()].every((v) => v === 0)).toBe(true);
      expect([...grads[2]!.dataSync(), ...grads[3]!.dataSync()].some((v) => v !== 0)).toBe(true);
      expect([...grads[2]!.dataSync(), ...grads[3]!.dataSync()].every(Number.isFinite)).toBe(true);
    });
  });

  it('is 0 for no factors, weight 0 or rank 0, and keeps the tensor count flat', () => {
    const empty = tf.tensor2d([], [0, 4]);
    const emptyB = tf.tensor2d([], [5, 0]);
    expect(orthogonalRegulariser([], 0.1).dataSync()[0]).toBe(0);
    expect(orthogonalRegulariser([{ A: empty, B: emptyB }], 0.1).dataSync()[0]).toBe(0);
    const pairs = makePairs([{ r: 3, inF: 6, outF: 5, seed: 3 }]);
    expect(orthogonalRegulariser(pairs, 0).dataSync()[0]).toBe(0);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      const { value, grads } = valueAndGrads(() => orthogonalRegulariser(pairs, 0.1), [pairs[0]!.A, pairs[0]!.B]);
      tf.dispose([value, ...grads]);
    }
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([empty, emptyB, pairs[0]!.A, pairs[0]!.B]);
  });
});
