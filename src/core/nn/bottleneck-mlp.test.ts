// bottleneckMlp's native kernels (PeftBottleneckMlp and its gradient) against
// the composite form they replace (the native kernels off, differentiated by
// autodiff): property tests over random sizes, with and without the skip, on
// cpu and on wasm; one kernel call each way in an adapter step (trainable
// weights and biases, x from a trainable variable); the gradients asked for
// only when asked; the composite backward used when the kernels are turned
// off mid-step; no tensors left behind; the C++ range checks.
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ensureWasmBackend, onBackend } from '../../../test/support/kernels.js';
import { RUNS, built, close, load, rand, whyNotBuilt, without } from '../../../test/support/native.js';
import { valueAndGradsLowMemory } from '../../accel/kernels/index.js';
import { PEFT_BOTTLENECK_MLP, PEFT_BOTTLENECK_MLP_GRAD } from '../../accel/native/fused-names.js';
import { fusedKernelActive, registerNativeKernels, setNativeKernelsEnabled } from '../../accel/native/index.js';
import { bottleneckMlp, bottleneckMlpComposite, bottleneckMlpIsNative } from './bottleneck-mlp.js';
import { geluErf } from './functional.js';

if (!built) console.log(`native bottleneck MLP tests skipped: ${whyNotBuilt}`);
const wasmOk = await ensureWasmBackend();

const mlpCase = fc.record({
  n: fc.integer({ min: 1, max: 9 }),
  inF: fc.integer({ min: 1, max: 9 }),
  hid: fc.integer({ min: 1, max: 7 }),
  outF: fc.integer({ min: 1, max: 9 }),
  skip: fc.boolean(),
  // the output scale: none, the reference's 0.5, any (negative too)
  scale: fc.oneof(fc.constant(1), fc.constant(0.5), fc.double({ min: -2, max: 2, noNaN: true })),
  seed: fc.integer({ min: 0, max: 1e6 }),
});
type MlpCase = Omit<typeof mlpCase extends fc.Arbitrary<infer T> ? T : never, 'scale'> & { scale?: number };

/** The operands, with GELU's inputs spread over [-3, 3] (both of its tails and the middle). */
function operands(c: MlpCase) {
  const out = c.skip ? c.inF : c.outF;
  return {
    x: rand([c.n, c.inF], c.seed) as tf.Tensor2D,
    w1: rand([c.hid, c.inF], c.seed + 1, 1.5) as tf.Tensor2D,
    b1: rand([c.hid], c.seed + 2) as tf.Tensor1D,
    w2: rand([out, c.hid], c.seed + 3) as tf.Tensor2D,
    b2: rand([out], c.seed + 4) as tf.Tensor1D,
    dy: rand([c.n, out], c.seed + 5),
  };
}

/** The value, then the gradients of sum(y * dy) for x, w1, b1, w2, b2. */
function mlpValueAndGrads(c: MlpCase): tf.Tensor[] {
  const o = operands(c);
  const inputs = [o.x, o.w1, o.b1, o.w2, o.b2];
  const run = (xs: tf.Tensor[]) => bottleneckMlp(xs[0] as tf.Tensor2D, xs[1] as tf.Tensor2D, xs[2] as tf.Tensor1D, xs[3] as tf.Tensor2D, xs[4] as tf.Tensor1D, c.skip, c.scale);
  const f = (...xs: tf.Tensor[]) => tf.sum(tf.mul(run(xs), o.dy));
  return [run(inputs), ...tf.grads(f)(inputs)];
}

function compare(c: MlpCase, got: tf.Tensor[], want: tf.Tensor[], label: string): void {
  expect(got.length).toBe(want.length);
  // sums over in then hid (value, through GELU), out then hid (dx), N then out (dw1, db1), N (dw2, db2)
  const h = c.inF * 1.5 + 1;
  const scales = [(c.inF + c.hid * h) * 4, (c.outF + c.inF) * c.hid * 8, c.n * c.outF * c.inF * 8, c.n * c.outF * c.inF * 8, c.n * h * 4, c.n * 4];
  got.forEach((g, i) => close(g, want[i]!, scales[i], `${label} ${JSON.stringify(c)} output ${i}`));
}

/** Kernel names run by f (a profile of one call). */
async function kernelsOf(f: () => tf.TensorContainer): Promise<string[]> {
  const info = await tf.profile(f);
  return info.kernels.map((k) => k.name);
}

describe('bottleneckMlp (composite form)', () => {
  it('is the adapter formula: scale (gelu(x W1^T + b1) W2^T + b2), plus x with the skip', () => {
    tf.tidy(() => {
      for (const skip of [false, true]) {
        for (const scale of [1, 0.5, -1.25]) {
          const c: MlpCase = { n: 3, inF: 4, hid: 2, outF: 4, skip, seed: 3 };
          const o = operands(c);
          const got = without(() => bottleneckMlp(o.x, o.w1, o.b1, o.w2, o.b2, skip, scale));
          const h = tf.mul(tf.add(tf.matMul(geluErf(tf.add(tf.matMul(o.x, o.w1, false, true), o.b1)), o.w2, false, true), o.b2), scale);
          close(got, skip ? tf.add(o.x, h) : h, 8, `formula, scale ${scale}`);
          close(bottleneckMlpComposite(o.x, o.w1, o.b1, o.w2, o.b2, skip, scale), got, 1, 'composite');
        }
      }
    });
  });

  it('rejects operands that do not chain', () => {
    tf.tidy(() => {
      const x = tf.zeros([2, 3]) as tf.Tensor2D;
      const [w1, b1] = [tf.zeros([4, 3]) as tf.Tensor2D, tf.zeros([4]) as tf.Tensor1D];
      expect(() => bottleneckMlp(x, w1, b1, tf.zeros([5, 4]), tf.zeros([5]), false)).not.toThrow();
      expect(() => bottleneckMlp(x, w1, b1, tf.zeros([5, 4]), tf.zeros([5]), true)).toThrow(/out = in/);
      expect(() => bottleneckMlp(x, w1, b1, tf.zeros([3, 5]), tf.zeros([3]), true)).toThrow(/chain/);
      expect(() => bottleneckMlp(x, w1, tf.zeros([3]), tf.zeros([3, 4]), tf.zeros([3]), true)).toThrow(/b1/);
    });
  });
});

describe.skipIf(!built)('native bottleneckMlp on the cpu backend', () => {
  it('is registered with the other native kernels', () => {
    expect(fusedKernelActive(PEFT_BOTTLENECK_MLP)).toBe(true);
    expect(fusedKernelActive(PEFT_BOTTLENECK_MLP_GRAD)).toBe(true);
    expect(bottleneckMlpIsNative()).toBe(true);
    expect(without(() => bottleneckMlpIsNative())).toBe(false);
  });

  it('value and every gradient equal the composite form (random sizes, with and without the skip)', () => {
    fc.assert(
      fc.property(mlpCase, (c) => {
        tf.tidy(() => compare(c, mlpValueAndGrads(c), without(() => mlpValueAndGrads(c)), 'cpu'));
      }),
      { numRuns: RUNS * 4 },
    );
  });

  it('equals the composite form at SAM sizes (w1: 512 tokens, 192 -> 48 -> 192; 777 rows), rows split over two threads', () => {
    load.addon!.setThreads(2);
    try {
      tf.tidy(() => {
        for (const [n, skip, scale] of [[512, true, 1], [512, false, 0.5], [777, true, 0.5]] as const) {
          const c: MlpCase = { n, inF: 192, hid: 48, outF: 192, skip, scale, seed: 11 };
          compare(c, mlpValueAndGrads(c), without(() => mlpValueAndGrads(c)), 'SAM sizes');
        }
      });
    } finally {
      load.addon!.setThreads((load as { threads: number }).threads);
    }
  });

  it('runs one kernel each way in an adapter step (trainable weights and biases, x from a trainable variable)', async () => {
    const c: MlpCase = { n: 5, inF: 6, hid: 3, outF: 6, skip: true, seed: 4 };
    const o = operands(c);
    const [w1, b1, w2, b2] = [o.w1, o.b1, o.w2, o.b2].map((t) => tf.variable(t, true));
    const pre = tf.variable(rand([c.n, c.inF], 7), true);
    const vars = [w1!, b1!, w2!, b2!, pre];
    const loss = () => tf.sum(tf.mul(bottleneckMlp(tf.mul(o.x, pre) as tf.Tensor2D, w1 as tf.Tensor2D, b1 as tf.Tensor1D, w2 as tf.Tensor2D, b2 as tf.Tensor1D, c.skip), o.dy)) as tf.Scalar;
    const names = await kernelsOf(() => {
      const { value, grads } = tf.variableGrads(loss, vars);
      return [value, ...Object.values(grads)];
    });
    expect(names.filter((n) => n === PEFT_BOTTLENECK_MLP)).toHaveLength(1);
    expect(names.filter((n) => n === PEFT_BOTTLENECK_MLP_GRAD)).toHaveLength(1);
    const got = tf.variableGrads(loss, vars);
    const want = without(() => tf.variableGrads(loss, vars));
    for (const v of vars) close(got.grads[v.name]!, want.grads[v.name]!, 64, v.name);
    // x from frozen tensors only: one call, without dx
    const names0 = await kernelsOf(() => {
      const y = () => tf.sum(tf.mul(bottleneckMlp(o.x, w1 as tf.Tensor2D, b1 as tf.Tensor1D, w2 as tf.Tensor2D, b2 as tf.Tensor1D, c.skip), o.dy)) as tf.Scalar;
      const { value, grads } = tf.variableGrads(y, [w1!, b1!, w2!, b2!]);
      return [value, ...Object.values(grads)];
    });
    expect(names0.filter((n) => n === PEFT_BOTTLENECK_MLP_GRAD)).toHaveLength(1);
    tf.dispose([got.value, want.value, ...Object.values(got.grads), ...Object.values(want.grads), ...vars, ...Object.values(o)]);
  });

  it('gives the engine gradients under the low-memory backward pass, and leaves no tensor behind', () => {
    const c: MlpCase = { n: 6, inF: 5, hid: 3, outF: 5, skip: true, seed: 12 };
    const o = operands(c);
    const [w1, b1, w2, b2] = [o.w1, o.b1, o.w2, o.b2].map((t) => tf.variable(t, true));
    const frozen = tf.variable(o.w1, false);
    const pre = tf.variable(rand([c.n, c.inF], 13), true);
    // two sites: the first's x from frozen tensors only, the second's from the first; a frozen w1 in the second
    const loss = () =>
      tf.tidy(() => {
        const h = bottleneckMlp(o.x, w1 as tf.Tensor2D, b1 as tf.Tensor1D, w2 as tf.Tensor2D, b2 as tf.Tensor1D, true);
        const x2 = tf.mul(h, pre) as tf.Tensor2D;
        return tf.sum(tf.mul(bottleneckMlp(x2, frozen as tf.Tensor2D, b1 as tf.Tensor1D, w2 as tf.Tensor2D, b2 as tf.Tensor1D, false), o.dy)) as tf.Scalar;
      });
    const xs = [w1!, b1!, w2!, b2!, pre];
    const ref = tf.engine().gradients(loss, xs);
    const before = tf.memory().numTensors;
    const low = valueAndGradsLowMemory(loss, xs);
    expect(low.value.dataSync()[0]).toBe(ref.value.dataSync()[0]);
    low.grads.forEach((g, i) => expect(Array.from(g!.dataSync())).toEqual(Array.from(ref.grads[i]!.dataSync())));
    tf.dispose([low.value, ...(low.grads as tf.Tensor[])]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([ref.value, ...ref.grads, ...xs, frozen, ...Object.values(o)]);
  });

  it('makes a gradient it did not foresee when asked (frozen weights differentiated for all the same)', () => {
    tf.tidy(() => {
      const c: MlpCase = { n: 4, inF: 3, hid: 5, outF: 2, skip: false, seed: 8 };
      const o = operands(c);
      const [w1, b1, w2, b2] = [o.w1, o.b1, o.w2, o.b2].map((t) => tf.variable(t, false));
      const ts = [o.x, w1!, b1!, w2!, b2!];
      const f = () => tf.sum(tf.mul(bottleneckMlp(o.x, w1 as tf.Tensor2D, b1 as tf.Tensor1D, w2 as tf.Tensor2D, b2 as tf.Tensor1D, c.skip), o.dy)) as tf.Scalar;
      const got = tf.engine().gradients(f, ts).grads;
      const want = without(() => tf.engine().gradients(f, ts).grads);
      got.forEach((g, i) => close(g, want[i]!, 64, `input ${i}`));
      tf.dispose([w1!, b1!, w2!, b2!]);
    });
  });

  it('falls back to the composite gradient when the kernels are turned off after the forward pass', () => {
    for (const [skip, scale] of [[false, 1], [true, 1], [false, 0.5], [true, -1.5]] as const) {
      tf.tidy(() => {
        const c: MlpCase = { n: 4, inF: 5, hid: 3, outF: skip ? 5 : 2, skip, seed: 2 };
        const o = operands(c);
        const inputs = [o.x, o.w1, o.b1, o.w2, o.b2];
        const loss = (offMidway: boolean) => (x: tf.Tensor, w1: tf.Tensor, b1: tf.Tensor, w2: tf.Tensor, b2: tf.Tensor) => {
          const y = bottleneckMlp(x as tf.Tensor2D, w1 as tf.Tensor2D, b1 as tf.Tensor1D, w2 as tf.Tensor2D, b2 as tf.Tensor1D, skip, scale);
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
        got.forEach((g, i) => close(g, want[i]!, 64, `turned off mid-step, skip ${skip}, scale ${scale}, input ${i}`));
      });
    }
  });

  it('leaves no tensors behind', () => {
    const c: MlpCase = { n: 3, inF: 4, hid: 2, outF: 4, skip: true, seed: 1 };
    const step = () => tf.tidy(() => mlpValueAndGrads(c).forEach((t) => t.dataSync()));
    step();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) step();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rejects ranges outside the arrays in C++', () => {
    const a = load.addon!;
    const f = (n: number) => new Float32Array(n);
    // n 2, in 3, hid 4, out 3: x 6, w1 12, b1 4, w2 12, b2 3, y 6, pre 8
    const p = (offsets: number[], skip = 1, out = 3) => Int32Array.from([2, 3, 4, out, skip, ...offsets]);
    const zero = [0, 0, 0, 0, 0, 0, 0];
    expect(() => a.bottleneckMlp(f(6), f(12), f(4), f(12), f(3), f(6), f(8), p(zero))).not.toThrow();
    expect(() => a.bottleneckMlp(f(5), f(12), f(4), f(12), f(3), f(6), f(8), p(zero))).toThrow(/x.*outside/);
    expect(() => a.bottleneckMlp(f(6), f(12), f(4), f(12), f(3), f(6), f(7), p(zero))).toThrow(/pre.*outside/);
    expect(() => a.bottleneckMlp(f(6), f(12), f(4), f(12), f(3), f(6), f(8), p([0, 0, 1, 0, 0, 0, 0]))).toThrow(/b1.*outside/);
    expect(() => a.bottleneckMlp(f(6), f(12), f(4), f(8), f(2), f(4), f(8), p(zero, 1, 2))).toThrow(/out = in/);
    expect(() => a.bottleneckMlp(f(6), f(12), f(4), f(8), f(2), f(4), f(8), p(zero, 0, 2))).not.toThrow();
    expect(() => a.bottleneckMlp(f(6), f(12), f(4), f(12), f(3), f(6), f(8), Int32Array.from([2, 3, 4, 3, 1, 0]))).toThrow(/params/);
    expect(() => a.bottleneckMlp(f(6), f(12), f(4), f(12), f(3), f(6), f(8), p(zero), 0.5)).not.toThrow();
    expect(() => a.bottleneckMlp(f(6), f(12), f(4), f(12), f(3), f(6), f(8), p(zero), 'half' as unknown as number)).toThrow(/scale/);
    const gz = Array(10).fill(0);
    expect(() => a.bottleneckMlpGrad(f(6), f(6), f(12), f(12), f(8), f(6), f(12), f(4), f(12), f(3), p(gz))).not.toThrow();
    expect(() => a.bottleneckMlpGrad(f(6), f(6), f(12), f(12), f(8), f(5), null, null, null, null, p(gz))).toThrow(/dx.*outside/);
    expect(() => a.bottleneckMlpGrad(f(6), f(6), f(12), f(12), f(8), null, null, null, null, f(2), p(gz))).toThrow(/db2.*outside/);
  });
});

describe.skipIf(!built || !wasmOk)('native bottleneckMlp on the wasm backend (in place on the wasm heap)', () => {
  it('value and gradients equal the composite form on wasm and the cpu reference', async () => {
    const cases = fc.sample(mlpCase, RUNS * 2);
    const reference = cases.map((c) => tf.tidy(() => without(() => mlpValueAndGrads(c)).map((t) => ({ shape: t.shape, data: t.dataSync().slice() }))));
    await onBackend('wasm', () => {
      registerNativeKernels('wasm');
      expect(fusedKernelActive(PEFT_BOTTLENECK_MLP)).toBe(true);
      cases.forEach((c, i) =>
        tf.tidy(() => {
          const got = mlpValueAndGrads(c);
          compare(c, got, without(() => mlpValueAndGrads(c)), 'wasm');
          compare(c, got, reference[i]!.map((r) => tf.tensor(r.data, r.shape)), 'wasm vs cpu');
        }),
      );
    });
  });
});
