// orthogonalityNorms' native kernels (PeftOrthogonality and its gradient)
// against the composite form (the native kernels off, its custom gradient),
// and that composite form against the formula differentiated by the tape:
// property tests over random counts, shapes and sides, the values and every
// gradient, on cpu and on wasm; one kernel each way for all the matrices; 0
// (not NaN) where a matrix is orthonormal; the composite backward when the
// kernels are turned off mid-step; no tensors left behind; the C++ range checks.
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ensureWasmBackend, onBackend } from '../../../test/support/kernels.js';
import { RUNS, built, close, load, rand, whyNotBuilt, without } from '../../../test/support/native.js';
import { PEFT_ORTHOGONALITY, PEFT_ORTHOGONALITY_GRAD } from '../../accel/native/fused-names.js';
import { fusedKernelActive, registerNativeKernels, setNativeKernelsEnabled } from '../../accel/native/index.js';
import { orthogonalityNorms, orthogonalityNormsComposite, orthogonalityNormsIsNative, type GramSide } from './orthogonality.js';

if (!built) console.log(`native orthogonality tests skipped: ${whyNotBuilt}`);
const wasmOk = await ensureWasmBackend();

const caseArb = fc.record({
  mats: fc.array(fc.record({ r: fc.integer({ min: 1, max: 8 }), other: fc.integer({ min: 1, max: 40 }), side: fc.constantFrom<GramSide>('rows', 'cols') }), { minLength: 1, maxLength: 7 }),
  scale: fc.constantFrom<number>(0.05, 0.3, 1),
  seed: fc.integer({ min: 0, max: 1e6 }),
});
type Case = typeof caseArb extends fc.Arbitrary<infer T> ? T : never;

function matrices(c: Case): tf.Tensor2D[] {
  return c.mats.map((m, i) => rand(m.side === 'rows' ? [m.r, m.other] : [m.other, m.r], c.seed + i, c.scale) as tf.Tensor2D);
}

/** The norms, then the gradients of sum(norms * dn) for every matrix. */
function valueAndGrads(c: Case, norms: typeof orthogonalityNorms = orthogonalityNorms): tf.Tensor[] {
  const xs = matrices(c);
  const sides = c.mats.map((m) => m.side);
  const dn = rand([xs.length], c.seed + 99);
  const f = (...ms: tf.Tensor[]) => tf.sum(tf.mul(norms(ms as tf.Tensor2D[], sides), dn));
  return [norms(xs, sides), ...tf.grads(f)(xs)];
}

/** The formula as HF PEFT writes it, differentiated by the tape. */
function taped(xs: readonly tf.Tensor2D[], sides: readonly GramSide[]): tf.Tensor1D {
  return tf.stack(
    xs.map((x, i) => {
      const gram = sides[i] === 'rows' ? tf.matMul(x, x, false, true) : tf.matMul(x, x, true, false);
      return tf.norm(tf.sub(gram, tf.eye(gram.shape[0])));
    }),
  ) as tf.Tensor1D;
}

function compare(c: Case, got: tf.Tensor[], want: tf.Tensor[], label: string): void {
  expect(got.length).toBe(want.length);
  got.forEach((g, i) => {
    expect(g.shape).toEqual(want[i]!.shape);
    close(g, want[i]!, 16 * (1 + Math.max(...c.mats.map((m) => m.other))), `${label} ${JSON.stringify(c)} output ${i}`);
  });
}

describe('orthogonalityNorms (composite form)', () => {
  it('is ||Gram - I||_F per matrix, with the gradient of the taped formula', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        tf.tidy(() => without(() => compare(c, valueAndGrads(c), valueAndGrads(c, taped), 'composite vs taped')));
      }),
      { numRuns: RUNS },
    );
  });

  it('rejects sides that do not match the matrices, and gives [] for none', () => {
    tf.tidy(() => {
      expect(() => orthogonalityNorms([tf.zeros([2, 3])], [])).toThrow(/sides/);
      expect(() => orthogonalityNorms([tf.zeros([2, 3, 1]) as unknown as tf.Tensor2D], ['rows'])).toThrow(/matrix/);
      expect(orthogonalityNorms([], []).shape).toEqual([0]);
    });
  });
});

describe.skipIf(!built)('native orthogonalityNorms on the cpu backend', () => {
  it('is registered with the other native kernels', () => {
    expect(fusedKernelActive(PEFT_ORTHOGONALITY)).toBe(true);
    expect(fusedKernelActive(PEFT_ORTHOGONALITY_GRAD)).toBe(true);
    expect(orthogonalityNormsIsNative()).toBe(true);
    expect(without(() => orthogonalityNormsIsNative())).toBe(false);
  });

  it('value and every gradient equal the composite form (random counts, shapes, sides, scales)', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        tf.tidy(() => compare(c, valueAndGrads(c), without(() => valueAndGrads(c)), 'cpu'));
      }),
      { numRuns: RUNS * 4 },
    );
  });

  it('equals the composite form at AdaLoRA sizes (r 12; in and out up to 3072)', () => {
    tf.tidy(() => {
      const c: Case = { mats: [{ r: 12, other: 768, side: 'rows' }, { r: 12, other: 3072, side: 'cols' }, { r: 12, other: 3072, side: 'rows' }, { r: 4, other: 192, side: 'cols' }], scale: 0.02, seed: 5 };
      const got = valueAndGrads(c);
      const want = without(() => valueAndGrads(c));
      got.forEach((g, i) => close(g, want[i]!, 64 * 3072, `AdaLoRA sizes, output ${i}`));
    });
  });

  it('runs one kernel each way for all the matrices', async () => {
    const c: Case = { mats: Array.from({ length: 10 }, (_, i) => ({ r: 4, other: 8 + i, side: i % 2 ? ('cols' as const) : ('rows' as const) })), scale: 0.3, seed: 3 };
    const xs = matrices(c).map((x) => tf.variable(x, true));
    const loss = () => tf.sum(orthogonalityNorms(xs, c.mats.map((m) => m.side))) as tf.Scalar;
    const info = await tf.profile(() => {
      const { value, grads } = tf.variableGrads(loss, xs);
      return [value, ...Object.values(grads)];
    });
    const names = info.kernels.map((k) => k.name);
    expect(names.filter((n) => n === PEFT_ORTHOGONALITY)).toHaveLength(1);
    expect(names.filter((n) => n === PEFT_ORTHOGONALITY_GRAD)).toHaveLength(1);
    expect(names.filter((n) => n === 'BatchMatMul')).toHaveLength(0);
    tf.dispose(xs);
  });

  it('is 0 with a zero gradient (not NaN) for an orthonormal matrix; the others keep theirs', () => {
    tf.tidy(() => {
      const xs = [tf.eye(3, 5) as tf.Tensor2D, tf.eye(4, 3) as tf.Tensor2D, rand([2, 6], 4) as tf.Tensor2D];
      const sides: GramSide[] = ['rows', 'cols', 'rows'];
      const norms = orthogonalityNorms(xs, sides).dataSync();
      expect([norms[0], norms[1]]).toEqual([0, 0]);
      expect(norms[2]).toBeGreaterThan(0);
      const grads = tf.grads((...ms: tf.Tensor[]) => tf.sum(orthogonalityNorms(ms as tf.Tensor2D[], sides)))(xs);
      expect([...grads[0]!.dataSync(), ...grads[1]!.dataSync()].every((v) => v === 0)).toBe(true);
      expect([...grads[2]!.dataSync()].some((v) => v !== 0)).toBe(true);
    });
  });

  it('falls back to the composite gradient when the kernels are turned off after the forward pass', () => {
    tf.tidy(() => {
      const c: Case = { mats: [{ r: 3, other: 7, side: 'rows' }, { r: 2, other: 5, side: 'cols' }], scale: 0.5, seed: 9 };
      const xs = matrices(c);
      const sides = c.mats.map((m) => m.side);
      let got: tf.Tensor[];
      try {
        got = tf.grads((...ms: tf.Tensor[]) => {
          const n = orthogonalityNorms(ms as tf.Tensor2D[], sides);
          setNativeKernelsEnabled(false);
          return tf.sum(n);
        })(xs);
      } finally {
        setNativeKernelsEnabled(true);
      }
      const want = without(() => tf.grads((...ms: tf.Tensor[]) => tf.sum(orthogonalityNorms(ms as tf.Tensor2D[], sides)))(xs));
      got.forEach((g, i) => close(g, want[i]!, 64, `turned off mid-step, input ${i}`));
    });
  });

  it('leaves no tensors behind', () => {
    const c: Case = { mats: [{ r: 3, other: 7, side: 'rows' }, { r: 2, other: 5, side: 'cols' }], scale: 0.5, seed: 1 };
    const step = () => tf.tidy(() => valueAndGrads(c).forEach((t) => t.dataSync()));
    step();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) step();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rejects ranges outside the arrays in C++', () => {
    const a = load.addon!;
    const f = (n: number) => new Float32Array(n);
    // two factors: [2, 3] rows, [4, 2] cols
    const p = (xOffs = [0, 0], normsOff = 0) => Int32Array.from([2, normsOff, 2, 3, 0, xOffs[0]!, 4, 2, 1, xOffs[1]!]);
    expect(() => a.orthogonality([f(6), f(8)], f(2), p())).not.toThrow();
    expect(() => a.orthogonality([f(6), f(7)], f(2), p())).toThrow(/x1.*outside/);
    expect(() => a.orthogonality([f(6), f(8)], f(2), p([1, 0]))).toThrow(/x0.*outside/);
    expect(() => a.orthogonality([f(6), f(8)], f(2), p([0, 0], 1))).toThrow(/norms.*outside/);
    expect(() => a.orthogonality([f(6)], f(2), p())).toThrow(/2 arrays/);
    expect(() => a.orthogonality([f(6), f(8)], f(2), Int32Array.from([2, 0, 2, 3, 0, 0]))).toThrow(/count/);
    const g = (dxOffs = [0, 0]) => Int32Array.from([2, 0, 0, 2, 3, 0, 0, dxOffs[0]!, 4, 2, 1, 0, dxOffs[1]!]);
    expect(() => a.orthogonalityGrad([f(6), f(8)], f(2), f(2), [f(6), f(8)], g())).not.toThrow();
    expect(() => a.orthogonalityGrad([f(6), f(8)], f(2), f(2), [f(6), f(8)], g([0, 1]))).toThrow(/dx1.*outside/);
    expect(() => a.orthogonalityGrad([f(6), f(8)], f(1), f(2), [f(6), f(8)], g())).toThrow(/dn.*outside/);
  });
});

describe.skipIf(!built || !wasmOk)('native orthogonalityNorms on the wasm backend (in place on the wasm heap)', () => {
  it('value and gradients equal the composite form on wasm and the cpu reference', async () => {
    const cases = fc.sample(caseArb, RUNS * 2);
    const reference = cases.map((c) => tf.tidy(() => without(() => valueAndGrads(c)).map((t) => ({ shape: t.shape, data: t.dataSync().slice() }))));
    await onBackend('wasm', () => {
      registerNativeKernels('wasm');
      expect(fusedKernelActive(PEFT_ORTHOGONALITY)).toBe(true);
      cases.forEach((c, i) =>
        tf.tidy(() => {
          const got = valueAndGrads(c);
          compare(c, got, without(() => valueAndGrads(c)), 'wasm');
          compare(c, got, reference[i]!.map((r) => tf.tensor(r.data, r.shape)), 'wasm vs cpu');
        }),
      );
    });
  });
});
