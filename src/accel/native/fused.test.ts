// The fused native kernels (GELU, layer norm, softmax and their gradients)
// against the composite forms they replace (native kernels off): property
// tests over random shapes of rank 1 to 5, odd sizes and sizes that take the
// threaded path, on cpu and on wasm (in place on the wasm heap). Skipped with
// the reason when the addon is not built; under CI, a machine with OpenBLAS
// installed must have built it.
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ensureWasmBackend, onBackend } from '../../../test/support/kernels.js';
import { geluErf, layerNorm } from '../../core/nn/functional.js';
import { FUSED_KERNEL_NAMES, fusedKernelActive, nativeDisabledByEnv, nativeStatus, registerNativeKernels, setNativeKernelsEnabled } from './index.js';
import { RUNS, built, close, expectBuiltWhereOpenBlasIs, load, rand, whyNotBuilt, without } from '../../../test/support/native.js';

if (!built) console.log(`fused native kernel tests skipped: ${whyNotBuilt}`);
const wasmOk = await ensureWasmBackend();

describe('fused native kernels: status', () => {
  it.skipIf(!process.env.CI || nativeDisabledByEnv())('are built under CI when OpenBLAS is installed', () => {
    expectBuiltWhereOpenBlasIs();
  });

  it.skipIf(!built)('are registered on the cpu backend with the others', () => {
    const s = nativeStatus('cpu');
    expect(s.kernels).toEqual(expect.arrayContaining(['Softmax', 'Transpose', ...FUSED_KERNEL_NAMES]));
    for (const name of FUSED_KERNEL_NAMES) expect(fusedKernelActive(name), name).toBe(true);
  });
});

// rank 1..5, small odd dimensions, a last axis 1..70 (not a multiple of the 8 lanes, some of them)
const shapeCase = fc.record({
  lead: fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 0, maxLength: 4 }),
  last: fc.integer({ min: 1, max: 70 }),
  seed: fc.integer({ min: 0, max: 1e6 }),
});
type ShapeCase = typeof shapeCase extends fc.Arbitrary<infer T> ? T : never;
const shapeOf = (c: ShapeCase) => [...c.lead, c.last];

const lnCase = fc.record({ shape: shapeCase, weight: fc.boolean(), bias: fc.boolean(), eps: fc.constantFrom(1e-5, 1e-6, 1e-3) });
type LnCase = typeof lnCase extends fc.Arbitrary<infer T> ? T : never;

/** GELU's value and gradient (through tf.grads, dy random). */
function geluCase(x: tf.Tensor, dy: tf.Tensor): tf.Tensor[] {
  const [g] = tf.grads((a: tf.Tensor) => tf.sum(tf.mul(geluErf(a), dy)))([x]);
  return [geluErf(x), g!];
}

/** Layer norm's value and gradients for x (and the weight and bias when present). */
function layerNormCase(c: LnCase): { out: tf.Tensor[]; rows: number } {
  const shape = shapeOf(c.shape);
  const n = shape[shape.length - 1]!;
  // an offset makes the mean non-zero (the two-pass variance must handle it)
  const x = tf.add(rand(shape, c.shape.seed, 3), 0.5);
  const w = c.weight ? rand([n], c.shape.seed + 1, 2) : undefined;
  const b = c.bias ? rand([n], c.shape.seed + 2) : undefined;
  const dy = rand(shape, c.shape.seed + 3);
  const inputs = [x, ...(w ? [w] : []), ...(b ? [b] : [])];
  const f = (...args: tf.Tensor[]) => {
    const [xx, ww, bb] = [args[0]!, c.weight ? args[1] : undefined, c.bias ? args[c.weight ? 2 : 1] : undefined];
    return tf.sum(tf.mul(layerNorm(xx, ww, bb, c.eps), dy));
  };
  const grads = tf.grads(f)(inputs);
  return { out: [layerNorm(x, w, b, c.eps), ...grads], rows: x.size / n };
}

/** tf.softmax's value and gradient. */
function softmaxCase(x: tf.Tensor, dy: tf.Tensor): tf.Tensor[] {
  const [g] = tf.grads((a: tf.Tensor) => tf.sum(tf.mul(tf.softmax(a), dy)))([x]);
  return [tf.softmax(x), g!];
}

function compareAll(got: tf.Tensor[], want: tf.Tensor[], scales: number[], label: string): void {
  got.forEach((g, i) => close(g, want[i]!, scales[i] ?? 1, `${label} output ${i}`));
}

describe.skipIf(!built)('fused native kernels on the cpu backend', () => {
  it('GELU and its gradient equal the composite form (random shapes, rank 1-5)', () => {
    fc.assert(
      fc.property(shapeCase, (c) => {
        tf.tidy(() => {
          const x = rand(shapeOf(c), c.seed, 6);
          const dy = rand(shapeOf(c), c.seed + 1);
          compareAll(geluCase(x, dy), without(() => geluCase(x, dy)), [1, 1], `gelu ${JSON.stringify(c)}`);
        });
      }),
      { numRuns: RUNS * 2 },
    );
  });

  it('GELU handles large, tiny and non-finite inputs as the composite does', () => {
    tf.tidy(() => {
      const x = tf.tensor1d([-Infinity, -1e4, -40, -13.5, -9, -5.7, -4, -3.99, -1e-3, -1e-30, 0, 1e-30, 1e-7, 0.5, 2.83, 5.66, 6, 13.5, 40, 1e4, Infinity, NaN]);
      const dy = tf.onesLike(x);
      compareAll(geluCase(x, dy), without(() => geluCase(x, dy)), [1, 1], 'gelu special values');
    });
  });

  it('layer norm and its gradients equal the composite form (with and without weight and bias)', () => {
    fc.assert(
      fc.property(lnCase, (c) => {
        tf.tidy(() => {
          const got = layerNormCase(c);
          const want = without(() => layerNormCase(c));
          compareAll(got.out, want.out, [4, 16, got.rows * 4, got.rows], `layer norm ${JSON.stringify(c)}`);
        });
      }),
      { numRuns: RUNS * 2 },
    );
  });

  it('layer norm of constant rows (zero variance) equals the composite form', () => {
    tf.tidy(() => {
      const c: LnCase = { shape: { lead: [3], last: 9, seed: 1 }, weight: true, bias: true, eps: 1e-5 };
      const x = tf.fill([3, 9], 2.5);
      const w = rand([9], 2);
      const b = rand([9], 3);
      close(layerNorm(x, w, b, c.eps), without(() => layerNorm(x, w, b, c.eps)), 1, 'constant rows');
    });
  });

  it('softmax and its gradient equal the backend kernels (random shapes, rank 1-5)', () => {
    fc.assert(
      fc.property(shapeCase, (c) => {
        tf.tidy(() => {
          const x = rand(shapeOf(c), c.seed, 20);
          const dy = rand(shapeOf(c), c.seed + 1);
          compareAll(softmaxCase(x, dy), without(() => softmaxCase(x, dy)), [1, 1], `softmax ${JSON.stringify(c)}`);
        });
      }),
      { numRuns: RUNS * 2 },
    );
  });

  it('softmax handles -Infinity (masked) logits and huge ranges as the backend does', () => {
    tf.tidy(() => {
      const x = tf.tensor2d([
        [0, -Infinity, 1, -Infinity, 2, 3, 4, 5, 6],
        [-1e30, 1e30, 0, 0, 0, 0, 0, 0, 0],
        [-100, -90, -80, -87.5, -88, -1e4, -50, -200, -300],
      ]);
      const dy = rand([3, 9], 7);
      compareAll(softmaxCase(x, dy), without(() => softmaxCase(x, dy)), [1, 1], 'softmax special values');
    });
  });

  it("softmax finds each row's maximum wherever it sits (every lane of the vector loop and the tail)", () => {
    // row i of [n, n]: 200 at column i, 199 at the next (cyclic), the rest in [-3, 3]. Softmax does not depend on
    // the shift, but exp's input is clamped at 88: a maximum missed (both large values missed) makes 0.5, 0.5 of 0.73, 0.27
    tf.tidy(() => {
      for (let n = 1; n <= 41; n++) {
        const v = Array.from(rand([n, n], n, 3).dataSync());
        for (let i = 0; i < n; i++) {
          if (n > 1) v[i * n + ((i + 1) % n)] = 199;
          v[i * n + i] = 200;
        }
        const x = tf.tensor2d(v, [n, n]);
        const dy = rand([n, n], n + 100);
        const got = softmaxCase(x, dy);
        if (n > 1) close(tf.gather(tf.reshape(got[0]!, [-1]), [0, 1]), tf.tensor1d([1 / (1 + Math.exp(-1)), 1 / (1 + Math.exp(1))]), 4, `softmax of ${n}`);
        compareAll(got, without(() => softmaxCase(x, dy)), [1, 1], `softmax, the maximum on the diagonal of ${n} x ${n}`);
      }
    });
  });

  it('equals the composite forms on sizes that take the threaded path', () => {
    load.addon!.setThreads(2);
    onTestFinished(() => load.addon!.setThreads((load as { threads: number }).threads));
    tf.tidy(() => {
      // 2 x 33 x 41 x 97 = 262k elements: four parts of the 64k-element grain, ragged ends
      const x = rand([2, 33, 41, 97], 1, 5);
      const dy = rand([2, 33, 41, 97], 2);
      compareAll(geluCase(x, dy), without(() => geluCase(x, dy)), [1, 1], 'gelu threaded');
      compareAll(softmaxCase(x, dy), without(() => softmaxCase(x, dy)), [1, 1], 'softmax threaded');
      const c: LnCase = { shape: { lead: [2, 33, 41], last: 97, seed: 3 }, weight: true, bias: true, eps: 1e-5 };
      const got = layerNormCase(c);
      const want = without(() => layerNormCase(c));
      compareAll(got.out, want.out, [4, 16, got.rows * 4, got.rows], 'layer norm threaded');
      // one thread gives the same values but for the order of the weight/bias partial sums
      load.addon!.setThreads(1);
      const single = layerNormCase(c);
      compareAll(got.out, single.out, [1, 1, got.rows, got.rows], 'layer norm 1 vs 2 threads');
    });
  });

  it('leaves no tensors behind', () => {
    const step = () =>
      tf.tidy(() => {
        const x = rand([3, 5, 16], 1);
        const w = rand([16], 2);
        const f = (a: tf.Tensor, ww: tf.Tensor) => tf.sum(tf.softmax(geluErf(layerNorm(a, ww, ww, 1e-5))));
        tf.grads(f)([x, w]).forEach((g) => g.dataSync());
      });
    step();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) step();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('falls back to the composite gradient when the kernels are turned off after the forward pass', () => {
    tf.tidy(() => {
      const x = rand([4, 12], 5, 3);
      const w = rand([12], 6);
      const f = (a: tf.Tensor, ww: tf.Tensor) => {
        const y = tf.softmax(geluErf(layerNorm(a, ww, undefined, 1e-5)));
        setNativeKernelsEnabled(false); // the backward pass runs without them
        return tf.sum(tf.mul(y, tf.range(0, 48).reshape([4, 12])));
      };
      let got: tf.Tensor[];
      try {
        got = tf.grads(f)([x, w]);
      } finally {
        setNativeKernelsEnabled(true);
      }
      const want = without(() => tf.grads((a: tf.Tensor, ww: tf.Tensor) => tf.sum(tf.mul(tf.softmax(geluErf(layerNorm(a, ww, undefined, 1e-5))), tf.range(0, 48).reshape([4, 12]))))([x, w]));
      compareAll(got, want, [50, 200], 'turned off mid-step');
    });
  });

  it('rejects ranges outside the arrays in C++', () => {
    const a = load.addon!;
    const x = new Float32Array(10);
    const y = new Float32Array(10);
    expect(() => a.gelu(x, y, Int32Array.of(2, 5, 0, 1))).toThrow(/outside the array/);
    expect(() => a.softmax(x, y, Int32Array.of(1, 10, -1, 0))).toThrow(/outside the array/);
    expect(() => a.softmaxGrad(x, y, y, Int32Array.of(1, 11, 0, 0, 0))).toThrow(/outside the array/);
    expect(() => a.geluGrad(x, y, y, Int32Array.of(1, 4, 0, 0, 7))).toThrow(/outside the array/);
    expect(() => a.gelu(x, y, Int32Array.of(-1, 5, 0, 0))).toThrow(/negative size/);
    expect(() => a.gelu(x, y, Int32Array.of(1, 5, 0))).toThrow(/wrong length/);
    const s = new Float32Array(2);
    // weight of 6 (cols) does not fit in 5 elements; mean of 2 rows does not fit from offset 1
    expect(() => a.layerNorm(x, new Float32Array(5), null, y, s, s, Int32Array.of(2, 5, 0, 0, 0, 0, 0, 0), 1e-5)).not.toThrow();
    expect(() => a.layerNorm(x, new Float32Array(4), null, y, s, s, Int32Array.of(2, 5, 0, 0, 0, 0, 0, 0), 1e-5)).toThrow(/weight.*outside/);
    expect(() => a.layerNorm(x, null, null, y, s, s, Int32Array.of(2, 5, 0, 0, 0, 0, 1, 0), 1e-5)).toThrow(/mean.*outside/);
    expect(() => a.layerNormGrad(x, x, s, s, null, y, new Float32Array(4), null, Int32Array.of(2, 5, 0, 0, 0, 0, 0, 0, 0, 0))).toThrow(/dweight.*outside/);
    expect(() => a.layerNorm(x, null, null, y, s, s, Int32Array.of(2, 5, 0, 0, 0, 0, 0, 0), Number.NaN)).not.toThrow();
    expect(() => (a.layerNorm as (...args: unknown[]) => void)(x, null, null, y, s, s, Int32Array.of(2, 5, 0, 0, 0, 0, 0, 0), 'eps')).toThrow(/number/);
  });
});

describe.skipIf(!built || !wasmOk)('fused native kernels on the wasm backend (in place on the wasm heap)', () => {
  const onWasm = <T>(f: () => T) =>
    onBackend('wasm', () => {
      registerNativeKernels('wasm');
      return f();
    });

  /** Runs `make` on cpu with the native kernels off, as plain arrays (the reference on the other backend). */
  const cpuReference = (make: () => tf.Tensor[]) => tf.tidy(() => without(make).map((t) => ({ shape: t.shape, data: t.dataSync().slice() })));
  const tensors = (ref: { shape: number[]; data: Float32Array | Int32Array | Uint8Array }[]) => ref.map((r) => tf.tensor(r.data, r.shape));

  it('registers the fused kernels on wasm', async () => {
    const s = await onWasm(() => nativeStatus('wasm'));
    expect(s.kernels).toEqual(expect.arrayContaining(['Softmax', ...FUSED_KERNEL_NAMES]));
    expect(await onWasm(() => FUSED_KERNEL_NAMES.every((n) => fusedKernelActive(n)))).toBe(true);
  });

  it('GELU, layer norm and softmax with their gradients equal the wasm composite forms and the cpu backend', async () => {
    const shapes = fc.sample(shapeCase, RUNS);
    const lns = fc.sample(lnCase, RUNS);
    for (let i = 0; i < shapes.length; i++) {
      const c = shapes[i]!;
      const ln = lns[i]!;
      const make = () => {
        const x = rand(shapeOf(c), c.seed, 6);
        const dy = rand(shapeOf(c), c.seed + 1);
        return [...geluCase(x, dy), ...softmaxCase(x, dy)];
      };
      const cpu = cpuReference(make);
      const lnCpu = cpuReference(() => layerNormCase(ln).out);
      await onWasm(() =>
        tf.tidy(() => {
          const got = make();
          compareAll(got, tensors(cpu), [1, 1, 1, 1], `gelu+softmax vs cpu ${JSON.stringify(c)}`);
          compareAll(got, without(make), [1, 1, 1, 1], `gelu+softmax vs wasm ${JSON.stringify(c)}`);
          const l = layerNormCase(ln);
          const scales = [4, 16, l.rows * 4, l.rows];
          compareAll(l.out, tensors(lnCpu), scales, `layer norm vs cpu ${JSON.stringify(ln)}`);
          compareAll(l.out, without(() => layerNormCase(ln).out), scales, `layer norm vs wasm ${JSON.stringify(ln)}`);
        }),
      );
    }
  });

  it('equals the wasm composite forms on sizes that take the threaded path', async () => {
    load.addon!.setThreads(2);
    onTestFinished(() => load.addon!.setThreads((load as { threads: number }).threads));
    await onWasm(() =>
      tf.tidy(() => {
        const x = rand([2, 33, 41, 97], 1, 5);
        const dy = rand([2, 33, 41, 97], 2);
        compareAll(geluCase(x, dy), without(() => geluCase(x, dy)), [1, 1], 'gelu threaded');
        compareAll(softmaxCase(x, dy), without(() => softmaxCase(x, dy)), [1, 1], 'softmax threaded');
        const c: LnCase = { shape: { lead: [2, 33, 41], last: 97, seed: 3 }, weight: true, bias: true, eps: 1e-5 };
        const got = layerNormCase(c);
        compareAll(got.out, without(() => layerNormCase(c).out), [4, 16, got.rows * 4, got.rows], 'layer norm threaded');
      }),
    );
  });

  it('leaves no tensors or wasm memory behind', async () => {
    await onWasm(() => {
      const heap = () => (tf.backend() as unknown as { wasm: { HEAPF32: Float32Array } }).wasm.HEAPF32.length;
      const step = () =>
        tf.tidy(() => {
          const x = rand([3, 7, 40], 1);
          const w = rand([40], 2);
          const f = (a: tf.Tensor, ww: tf.Tensor) => tf.sum(tf.softmax(geluErf(layerNorm(a, ww, ww, 1e-5))));
          tf.grads(f)([x, w]).forEach((g) => g.dataSync());
        });
      step();
      const before = { ...tf.memory(), heap: heap() };
      for (let i = 0; i < 5; i++) step();
      const after = { ...tf.memory(), heap: heap() };
      expect(after.numTensors).toBe(before.numTensors);
      expect(after.numBytes).toBe(before.numBytes);
      expect(after.heap).toBe(before.heap);
    });
  });
});
