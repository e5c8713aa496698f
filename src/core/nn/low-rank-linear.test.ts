// lowRankLinear's native kernels (PeftLowRankLinear and its gradient) against
// the composite form they replace (the native kernels off, differentiated by
// autodiff): property tests over random sizes, ranks and enabled groups, with
// and without a bias, with and without a rank scale e, on cpu and on wasm; one kernel call each way in a
// LoRA-like step (frozen W and bias, trainable A and B); the gradients asked
// for only when asked; the composite backward used when the kernels are turned
// off mid-step; no tensors left behind; the C++ range checks.
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ensureWasmBackend, onBackend } from '../../../test/support/kernels.js';
import { RUNS, built, close, load, rand, whyNotBuilt, without } from '../../../test/support/native.js';
import { valueAndGradsLowMemory } from '../../accel/kernels/index.js';
import { PEFT_LOW_RANK_LINEAR, PEFT_LOW_RANK_LINEAR_GRAD, PEFT_LOW_RANK_LINEAR_SCALED } from '../../accel/native/fused-names.js';
import { fusedKernelActive, registerNativeKernels, setNativeKernelsEnabled } from '../../accel/native/index.js';
import { lowRankLinear, lowRankLinearComposite } from './low-rank-linear.js';

if (!built) console.log(`native low-rank linear tests skipped: ${whyNotBuilt}`);
const wasmOk = await ensureWasmBackend();

const lrCase = fc
  .record({
    n: fc.integer({ min: 1, max: 9 }),
    inF: fc.integer({ min: 1, max: 9 }),
    gw: fc.integer({ min: 1, max: 6 }),
    r: fc.integer({ min: 1, max: 4 }),
    groups: fc.array(fc.boolean(), { minLength: 1, maxLength: 4 }),
    bias: fc.boolean(),
    /** a rank scale e: none, [r*k] or [r*k, 1] */
    e: fc.constantFrom<'none' | 'vector' | 'column'>('none', 'vector', 'column'),
    scaling: fc.double({ min: -3, max: 3, noNaN: true }),
    seed: fc.integer({ min: 0, max: 1e6 }),
  })
  .filter((c) => c.groups.some(Boolean));
type LrCase = typeof lrCase extends fc.Arbitrary<infer T> ? T : never;

function operands(c: LrCase) {
  const k = c.groups.filter(Boolean).length;
  const out = c.gw * c.groups.length;
  return {
    x: rand([c.n, c.inF], c.seed) as tf.Tensor2D,
    w: rand([out, c.inF], c.seed + 1) as tf.Tensor2D,
    bias: rand([out], c.seed + 2) as tf.Tensor1D,
    a: rand([c.r * k, c.inF], c.seed + 3) as tf.Tensor2D,
    b: rand([c.gw * k, c.r], c.seed + 4) as tf.Tensor2D,
    e: rand(c.e === 'column' ? [c.r * k, 1] : [c.r * k], c.seed + 6),
    dy: rand([c.n, out], c.seed + 5),
  };
}

/** The value, then the gradients of sum(y * dy) for x, w, a, b, e (with e), and the bias (with a bias). */
function lrValueAndGrads(c: LrCase): tf.Tensor[] {
  const o = operands(c);
  const scaled = c.e !== 'none';
  const inputs = [o.x, o.w, o.a, o.b, ...(scaled ? [o.e] : []), ...(c.bias ? [o.bias] : [])];
  const run = (xs: tf.Tensor[]) =>
    lowRankLinear(xs[0] as tf.Tensor2D, xs[1] as tf.Tensor2D, c.bias ? (xs[scaled ? 5 : 4] as tf.Tensor1D) : undefined, xs[2] as tf.Tensor2D, xs[3] as tf.Tensor2D, c.scaling, c.groups, scaled ? xs[4] : undefined);
  const f = (...xs: tf.Tensor[]) => tf.sum(tf.mul(run(xs), o.dy));
  return [run(inputs), ...tf.grads(f)(inputs)];
}

function compare(c: LrCase, got: tf.Tensor[], want: tf.Tensor[], label: string): void {
  expect(got.length).toBe(want.length);
  // sums over in + r (value), out + r (dx), N (dw, da, db, e, bias), all scaled
  const s = 1 + Math.abs(c.scaling);
  const scales = [s * (c.inF + c.r) * 4, s * (c.gw * c.groups.length + c.r) * 4, c.n * 4, s * c.n * c.gw * 4, s * c.n * c.inF * 4];
  if (c.e !== 'none') scales.push(s * c.n * c.inF * c.gw * 4);
  scales.push(c.n * 4);
  got.forEach((g, i) => close(g, want[i]!, scales[i], `${label} ${JSON.stringify(c)} output ${i}`));
}

/** Kernel names run by f (a profile of one call). */
async function kernelsOf(f: () => tf.TensorContainer): Promise<string[]> {
  const info = await tf.profile(f);
  return info.kernels.map((k) => k.name);
}

describe('lowRankLinear (composite form)', () => {
  it('is the LoRA formula: x W^T + b + scaling (x A_j^T) B_j^T on the enabled groups, 0 on the others', () => {
    tf.tidy(() => {
      const c: LrCase = { n: 3, inF: 4, gw: 2, r: 2, groups: [true, false, true], bias: true, e: 'none', scaling: 0.5, seed: 3 };
      const o = operands(c);
      const got = without(() => lowRankLinear(o.x, o.w, o.bias, o.a, o.b, c.scaling, c.groups));
      const base = tf.add(tf.matMul(o.x, o.w, false, true), o.bias);
      const q = tf.mul(tf.matMul(tf.matMul(o.x, tf.slice(o.a, [0, 0], [2, 4]), false, true), tf.slice(o.b, [0, 0], [2, 2]), false, true), 0.5);
      const v = tf.mul(tf.matMul(tf.matMul(o.x, tf.slice(o.a, [2, 0], [2, 4]), false, true), tf.slice(o.b, [2, 0], [2, 2]), false, true), 0.5);
      close(got, tf.add(base, tf.concat([q, tf.zeros([3, 2]), v], 1)), 8, 'formula');
      close(lowRankLinearComposite(o.x, o.w, o.bias, o.a, o.b, c.scaling, c.groups), got, 1, 'composite');
    });
  });

  it('with a rank scale e is the same formula on A*E (e scales row i of A)', () => {
    tf.tidy(() => {
      for (const shape of ['vector', 'column'] as const) {
        const c: LrCase = { n: 3, inF: 4, gw: 2, r: 2, groups: [true, false, true], bias: true, e: shape, scaling: 0.5, seed: 5 };
        const o = operands(c);
        const ae = tf.mul(o.a, tf.reshape(o.e, [-1, 1])) as tf.Tensor2D;
        const got = without(() => lowRankLinear(o.x, o.w, o.bias, o.a, o.b, c.scaling, c.groups, o.e));
        close(got, without(() => lowRankLinear(o.x, o.w, o.bias, ae, o.b, c.scaling, c.groups)), 8, `formula, e ${shape}`);
      }
    });
  });

  it('rejects operands that do not fit the groups', () => {
    tf.tidy(() => {
      const x = tf.zeros([2, 3]) as tf.Tensor2D;
      const w = tf.zeros([6, 3]) as tf.Tensor2D;
      expect(() => lowRankLinear(x, w, undefined, tf.zeros([2, 3]), tf.zeros([3, 2]), 1, [true, false])).not.toThrow();
      expect(() => lowRankLinear(x, w, undefined, tf.zeros([2, 3]), tf.zeros([3, 2]), 1, [false, false])).toThrow(/one enabled/);
      expect(() => lowRankLinear(x, w, undefined, tf.zeros([2, 3]), tf.zeros([3, 2]), 1, [true, false, true, false])).toThrow(/split/);
      expect(() => lowRankLinear(x, w, undefined, tf.zeros([4, 3]), tf.zeros([3, 2]), 1, [true, true])).toThrow(/\[r\*k, in\]/);
      expect(() => lowRankLinear(x, w, tf.zeros([5]) as tf.Tensor1D, tf.zeros([2, 3]), tf.zeros([3, 2]), 1, [true, false])).toThrow(/bias/);
      expect(() => lowRankLinear(x, w, undefined, tf.zeros([2, 3]), tf.zeros([3, 2]), 1, [true, false], tf.zeros([2, 1]))).not.toThrow();
      expect(() => lowRankLinear(x, w, undefined, tf.zeros([2, 3]), tf.zeros([3, 2]), 1, [true, false], tf.zeros([3]))).toThrow(/e must/);
      expect(() => lowRankLinear(x, w, undefined, tf.zeros([2, 3]), tf.zeros([3, 2]), 1, [true, false], tf.zeros([2, 2]))).toThrow(/e must/);
    });
  });
});

describe.skipIf(!built)('native lowRankLinear on the cpu backend', () => {
  it('is registered with the other native kernels', () => {
    expect(fusedKernelActive(PEFT_LOW_RANK_LINEAR)).toBe(true);
    expect(fusedKernelActive(PEFT_LOW_RANK_LINEAR_GRAD)).toBe(true);
    expect(fusedKernelActive(PEFT_LOW_RANK_LINEAR_SCALED)).toBe(true);
  });

  it('value and every gradient equal the composite form (random sizes, ranks, groups, with and without bias and e)', () => {
    fc.assert(
      fc.property(lrCase, (c) => {
        tf.tidy(() => compare(c, lrValueAndGrads(c), without(() => lrValueAndGrads(c)), 'cpu'));
      }),
      { numRuns: RUNS * 4 },
    );
  });

  it('equals the composite form at SAM sizes (w1 qkv: 512 tokens, 192 -> 576, q and v), split over two threads', () => {
    load.addon!.setThreads(2);
    try {
      tf.tidy(() => {
        const c: LrCase = { n: 512, inF: 192, gw: 192, r: 4, groups: [true, false, true], bias: true, e: 'none', scaling: 0.25, seed: 11 };
        compare(c, lrValueAndGrads(c), without(() => lrValueAndGrads(c)), 'SAM sizes');
        // AdaLoRA's: one group, E [r, 1]
        const d: LrCase = { n: 512, inF: 192, gw: 576, r: 12, groups: [true], bias: true, e: 'column', scaling: 1, seed: 12 };
        compare(d, lrValueAndGrads(d), without(() => lrValueAndGrads(d)), 'SAM sizes, scaled');
      });
    } finally {
      load.addon!.setThreads((load as { threads: number }).threads);
    }
  });

  it('runs one kernel each way in a LoRA step (frozen W and bias, trainable A and B, x from a trainable variable)', async () => {
    const c: LrCase = { n: 5, inF: 6, gw: 4, r: 2, groups: [true, false, true], bias: true, e: 'none', scaling: 2, seed: 4 };
    const o = operands(c);
    const w = tf.variable(o.w, false);
    const bias = tf.variable(o.bias, false);
    const a = tf.variable(o.a, true);
    const b = tf.variable(o.b, true);
    const pre = tf.variable(rand([c.n, c.inF], 7), true);
    const loss = () => tf.sum(tf.mul(lowRankLinear(tf.mul(o.x, pre) as tf.Tensor2D, w, bias, a, b, c.scaling, c.groups), o.dy)) as tf.Scalar;
    const names = await kernelsOf(() => {
      const { value, grads } = tf.variableGrads(loss, [a, b, pre]);
      return [value, ...Object.values(grads)];
    });
    expect(names.filter((n) => n === PEFT_LOW_RANK_LINEAR)).toHaveLength(1);
    expect(names.filter((n) => n === PEFT_LOW_RANK_LINEAR_GRAD)).toHaveLength(1);
    // and the same gradients as the composite form
    const got = tf.variableGrads(loss, [a, b, pre]);
    const want = without(() => tf.variableGrads(loss, [a, b, pre]));
    for (const v of [a, b, pre]) close(got.grads[v.name]!, want.grads[v.name]!, 64, v.name);
    // x from frozen tensors only: its gradient is not made (one call, no dx)
    const names0 = await kernelsOf(() => {
      const y = () => tf.sum(tf.mul(lowRankLinear(o.x, w, bias, a, b, c.scaling, c.groups), o.dy)) as tf.Scalar;
      const { value, grads } = tf.variableGrads(y, [a, b]);
      return [value, ...Object.values(grads)];
    });
    expect(names0.filter((n) => n === PEFT_LOW_RANK_LINEAR_GRAD)).toHaveLength(1);
    tf.dispose([got.value, want.value, ...Object.values(got.grads), ...Object.values(want.grads), w, bias, a, b, pre, ...Object.values(o)]);
  });

  it('runs one kernel each way with a rank scale (an AdaLoRA step: trainable A, E, B), and no other for e', async () => {
    const c: LrCase = { n: 5, inF: 6, gw: 4, r: 3, groups: [true], bias: true, e: 'column', scaling: 2, seed: 14 };
    const o = operands(c);
    const w = tf.variable(o.w, false);
    const bias = tf.variable(o.bias, false);
    const a = tf.variable(o.a, true);
    const b = tf.variable(o.b, true);
    const e = tf.variable(o.e, true);
    const loss = () => tf.sum(lowRankLinear(o.x, w, bias, a, b, c.scaling, c.groups, e)) as tf.Scalar;
    const names = await kernelsOf(() => {
      const { value, grads } = tf.variableGrads(loss, [a, b, e]);
      return [value, ...Object.values(grads)];
    });
    expect(names.filter((n) => n === PEFT_LOW_RANK_LINEAR_SCALED)).toHaveLength(1);
    expect(names.filter((n) => n === PEFT_LOW_RANK_LINEAR_GRAD)).toHaveLength(1);
    // no kernel for e beside those: as many as the same step without e
    const plain = await kernelsOf(() => {
      const { value, grads } = tf.variableGrads(() => tf.sum(lowRankLinear(o.x, w, bias, a, b, c.scaling, c.groups)) as tf.Scalar, [a, b]);
      return [value, ...Object.values(grads)];
    });
    expect(names).toHaveLength(plain.length);
    const got = tf.variableGrads(loss, [a, b, e]);
    const want = without(() => tf.variableGrads(loss, [a, b, e]));
    for (const v of [a, b, e]) {
      expect(got.grads[v.name]!.shape).toEqual(v.shape);
      close(got.grads[v.name]!, want.grads[v.name]!, 64, v.name);
    }
    tf.dispose([got.value, want.value, ...Object.values(got.grads), ...Object.values(want.grads), w, bias, a, b, e, ...Object.values(o)]);
  });

  it('gives the engine gradients under the low-memory backward pass, and leaves no tensor behind', () => {
    const c: LrCase = { n: 6, inF: 5, gw: 3, r: 2, groups: [true, false, true], bias: true, e: 'none', scaling: 0.5, seed: 12 };
    const o = operands(c);
    const w = tf.variable(o.w, false);
    const bias = tf.variable(o.bias, false);
    const a = tf.variable(o.a, true);
    const b = tf.variable(o.b, true);
    const pre = tf.variable(rand([c.n, c.inF], 13), true);
    // two sites: the first's x from frozen tensors only, the second's from the first
    const loss = () =>
      tf.tidy(() => {
        const h = lowRankLinear(o.x, w, bias, a, b, c.scaling, c.groups);
        const x2 = tf.mul(tf.slice(h, [0, 0], [c.n, c.inF]), pre) as tf.Tensor2D;
        return tf.sum(tf.mul(lowRankLinear(x2, w, bias, a, b, c.scaling, c.groups), o.dy)) as tf.Scalar;
      });
    const xs = [a, b, pre];
    const ref = tf.engine().gradients(loss, xs);
    const before = tf.memory().numTensors;
    const low = valueAndGradsLowMemory(loss, xs);
    expect(low.value.dataSync()[0]).toBe(ref.value.dataSync()[0]);
    low.grads.forEach((g, i) => expect(Array.from(g!.dataSync())).toEqual(Array.from(ref.grads[i]!.dataSync())));
    tf.dispose([low.value, ...(low.grads as tf.Tensor[])]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([ref.value, ...ref.grads, w, bias, a, b, pre, ...Object.values(o)]);
  });

  it('makes a gradient it did not foresee when asked (a frozen weight differentiated for all the same)', () => {
    tf.tidy(() => {
      const c: LrCase = { n: 4, inF: 3, gw: 5, r: 2, groups: [true], bias: true, e: 'none', scaling: 1.5, seed: 8 };
      const o = operands(c);
      const w = tf.variable(o.w, false);
      const bias = tf.variable(o.bias, false);
      const f = (x: tf.Tensor) => tf.sum(tf.mul(lowRankLinear(x as tf.Tensor2D, w, bias, o.a, o.b, c.scaling, c.groups), o.dy));
      const grads = (on: boolean) => {
        const run = () => tf.engine().gradients(() => f(o.x) as tf.Scalar, [o.x, w, bias, o.a, o.b]).grads;
        return on ? run() : without(run);
      };
      const got = grads(true);
      const want = grads(false);
      got.forEach((g, i) => close(g, want[i]!, 64, `input ${i}`));
      tf.dispose([w, bias]);
    });
  });

  it('falls back to the composite gradient when the kernels are turned off after the forward pass', () => {
    for (const [groups, scaled] of [[[true], false], [[false, true, true], false], [[true], true], [[true, false, true], true]] as const) {
      tf.tidy(() => {
        const c: LrCase = { n: 4, inF: 5, gw: 3, r: 2, groups: [...groups], bias: true, e: scaled ? 'vector' : 'none', scaling: 0.7, seed: 2 };
        const o = operands(c);
        const inputs = [o.x, o.w, o.bias, o.a, o.b, o.e];
        const loss = (offMidway: boolean) => (x: tf.Tensor, w: tf.Tensor, bias: tf.Tensor, a: tf.Tensor, b: tf.Tensor, e: tf.Tensor) => {
          const y = lowRankLinear(x as tf.Tensor2D, w as tf.Tensor2D, bias as tf.Tensor1D, a as tf.Tensor2D, b as tf.Tensor2D, c.scaling, c.groups, scaled ? e : tf.mul(e, 0));
          if (offMidway) setNativeKernelsEnabled(false);
          return tf.sum(tf.mul(y, o.dy));
        };
        let got: tf.Tensor[];
        try {
          got = tf.grads(loss(true))(inputs);
        } finally {
          setNativeKernelsEnabled(true);
        }
        const want = without(() => tf.grads(loss(false))(inputs));
        got.forEach((g, i) => close(g, want[i]!, 64, `turned off mid-step, input ${i}`));
      });
    }
  });

  it('leaves no tensors behind', () => {
    const c: LrCase = { n: 3, inF: 4, gw: 2, r: 2, groups: [true, false, true], bias: true, e: 'none', scaling: 1, seed: 1 };
    const step = () => tf.tidy(() => lrValueAndGrads(c).forEach((t) => t.dataSync()));
    step();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) step();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rejects ranges outside the arrays in C++', () => {
    const a = load.addon!;
    const f = (n: number) => new Float32Array(n);
    // n 2, in 3, out 4 in 2 groups (gw 2), r 1, group 1 enabled: x 6, w 12, bias 4, a 3, b 2, e 1, y 8, t 2
    const p = (offsets: number[], groups = [0, 1]) => Int32Array.from([2, 3, 4, 1, 2, ...offsets, ...groups]);
    const zero = [0, 0, 0, 0, 0, 0, 0, 0];
    expect(() => a.lowRankLinear(f(6), f(12), f(4), f(3), f(2), f(1), f(8), f(2), p(zero), 1)).not.toThrow();
    expect(() => a.lowRankLinear(f(6), f(12), null, f(3), f(2), null, f(8), f(2), p(zero), 1)).not.toThrow();
    expect(() => a.lowRankLinear(f(5), f(12), null, f(3), f(2), null, f(8), f(2), p(zero), 1)).toThrow(/x.*outside/);
    expect(() => a.lowRankLinear(f(6), f(12), null, f(3), f(2), null, f(8), f(1), p(zero), 1)).toThrow(/t.*outside/);
    expect(() => a.lowRankLinear(f(6), f(12), null, f(3), f(2), null, f(8), f(2), p([0, 0, 0, 0, 1, 0, 0, 0]), 1)).toThrow(/b.*outside/);
    expect(() => a.lowRankLinear(f(6), f(12), null, f(3), f(2), f(1), f(8), f(2), p([0, 0, 0, 0, 0, 1, 0, 0]), 1)).toThrow(/e.*outside/);
    expect(() => a.lowRankLinear(f(6), f(12), null, f(6), f(4), f(1), f(8), f(4), p(zero, [1, 1]), 1)).toThrow(/e.*outside/);
    expect(() => a.lowRankLinear(f(6), f(12), null, f(6), f(4), f(2), f(8), f(4), p(zero, [1, 1]), 1)).not.toThrow();
    expect(() => a.lowRankLinear(f(6), f(12), null, f(3), f(2), null, f(8), f(2), p(zero, [1]), 1)).toThrow(/params/);
    expect(() => a.lowRankLinear(f(6), f(12), null, f(3), f(2), null, f(8), f(2), Int32Array.from([2, 3, 4, 1, 3, ...zero, 0, 1, 0]), 1)).toThrow(/divisible/);
    const gp = Int32Array.from([2, 3, 4, 1, 2, ...Array(13).fill(0), 0, 1]);
    expect(() => a.lowRankLinearGrad(f(8), f(6), f(12), f(3), f(2), f(1), f(2), f(6), f(3), f(2), f(12), f(4), f(1), gp, 1)).not.toThrow();
    expect(() => a.lowRankLinearGrad(f(8), f(6), f(12), f(3), f(2), null, f(2), f(5), null, null, null, null, null, gp, 1)).toThrow(/dx.*outside/);
    expect(() => a.lowRankLinearGrad(f(8), f(6), f(12), f(3), f(2), null, f(2), null, null, null, null, f(3), null, gp, 1)).toThrow(/dbias.*outside/);
    expect(() => a.lowRankLinearGrad(f(8), f(6), f(12), f(3), f(2), f(1), f(2), null, null, null, null, null, f(0), gp, 1)).toThrow(/de.*outside/);
    expect(() => a.lowRankLinearGrad(f(8), f(6), f(12), f(3), f(2), null, f(2), null, null, null, null, null, f(1), gp, 1)).toThrow(/without e/);
  });
});

describe.skipIf(!built || !wasmOk)('native lowRankLinear on the wasm backend (in place on the wasm heap)', () => {
  it('value and gradients equal the composite form on wasm and the cpu reference', async () => {
    const cases = fc.sample(lrCase, RUNS * 2);
    const reference = cases.map((c) => tf.tidy(() => without(() => lrValueAndGrads(c)).map((t) => ({ shape: t.shape, data: t.dataSync().slice() }))));
    await onBackend('wasm', () => {
      registerNativeKernels('wasm');
      expect(fusedKernelActive(PEFT_LOW_RANK_LINEAR)).toBe(true);
      cases.forEach((c, i) =>
        tf.tidy(() => {
          const got = lrValueAndGrads(c);
          compare(c, got, without(() => lrValueAndGrads(c)), 'wasm');
          compare(c, got, reference[i]!.map((r) => tf.tensor(r.data, r.shape)), 'wasm vs cpu');
        }),
      );
    });
  });
});
