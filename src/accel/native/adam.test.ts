// PeftAdam (native/src/adam.cc) against the composite form of Adam.apply
// (src/core/train/adam.ts, the native kernels off): BIT-identical parameter
// and moments after one update, over many sizes (0, 1, odd, not a multiple of
// the 4 lanes, LoRA shapes, threaded), random hyperparameters and steps,
// gradients from 1e-20 (squares in float32's subnormals) to 1e3, and special
// values; on cpu and on wasm (in place on the wasm heap), and across the two.
// Skipped with the reason when the addon is not built.
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ensureWasmBackend, onBackend } from '../../../test/support/kernels.js';
import { Parameter } from '../../core/nn/parameter.js';
import { seededValues } from '../../../test/support/reference-math.js';
import { Adam } from '../../app/train/adam.js';
import { PEFT_ADAM } from './fused-names.js';
import { fusedKernelActive, registerNativeKernels } from './index.js';
import { RUNS, built, load, whyNotBuilt, without, expectSameBits as sameBits } from '../../../test/support/native.js';

if (!built) console.log(`native Adam tests skipped: ${whyNotBuilt}`);
const wasmOk = await ensureWasmBackend();

interface Case {
  shape: number[];
  seed: number;
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** The step being taken (the state is that of step - 1). */
  step: number;
  /** The gradients' magnitude. */
  scale: number;
}

interface State {
  p: Float32Array;
  g: Float32Array;
  m: Float32Array;
  v: Float32Array;
}

const SHAPES = [[], [0], [1], [2], [3], [4], [5], [7], [8], [9], [4, 0], [13, 17], [4, 192], [192, 4], [4, 768], [768, 4], [3, 5, 7], [1000], [4099]];

function cases(count: number, seed: number): Case[] {
  const r = seededValues(seed);
  const pick = <T>(xs: T[]) => xs[Math.floor(r(0, 1) * xs.length) % xs.length]!;
  const out: Case[] = [];
  for (let i = 0; i < count; i++) {
    out.push({
      shape: SHAPES[i % SHAPES.length]!,
      seed: Math.floor(r(0, 1e6)),
      lr: pick([1e-3, 3e-4, 1e-2, 0.1, 10 ** r(-6, 0)]),
      beta1: pick([0.9, 0.8, 0.5, 0, r(0, 1)]),
      beta2: pick([0.999, 0.99, 0.9, r(0.5, 1)]),
      eps: pick([1e-8, 1e-6, 1e-3, 1e-12]),
      step: pick([1, 2, 3, 10, 1000, Math.floor(r(1, 20000))]),
      scale: pick([1, 1e-20, 1e-4, 1e3, 10 ** r(-8, 2)]),
    });
  }
  return out;
}

function inputs(c: Case): State {
  const n = c.shape.reduce((a, b) => a * b, 1);
  const r = seededValues(c.seed);
  const fill = (f: () => number) => Float32Array.from({ length: n }, f);
  return {
    p: fill(() => r(-1, 1)),
    g: fill(() => r(-1, 1) * c.scale),
    m: fill(() => r(-0.5, 0.5) * c.scale),
    v: fill(() => r(0, 1) * c.scale * c.scale),
  };
}

/** One Adam.apply from the given state on the active backend: p', m', v' as arrays. */
function update(c: Case, s: State): Float32Array[] {
  const p0 = tf.tensor(s.p, c.shape);
  const param = new Parameter(p0); // its variable has its own reference to the data
  p0.dispose();
  const adam = new Adam({ lr: c.lr, beta1: c.beta1, beta2: c.beta2, eps: c.eps });
  const g = tf.tensor(s.g, c.shape);
  const m = tf.tensor(s.m, c.shape);
  const v = tf.tensor(s.v, c.shape);
  try {
    adam.load(c.step - 1, new Map([
      ['m/w', m],
      ['v/w', v],
    ]));
    adam.apply([['w', param]], new Map([['w', g]]));
    const st = adam.state();
    return [param.variable, st.get('m/w')!, st.get('v/w')!].map((t) => t.dataSync().slice() as Float32Array);
  } finally {
    tf.dispose([g, m, v]);
    param.dispose();
    adam.dispose();
  }
}

/** The same bits at every index (any NaN equals any NaN). */
function expectSameBits(got: Float32Array[], want: Float32Array[], label: string): void {
  sameBits(got, want, label, ['p', 'm', 'v']);
}

/** Special values: zero (both signs), subnormals, huge, infinite, NaN, a negative second moment. */
function specialInputs(): State {
  const g = [0, -0, 1e-45, -1e-40, 1e-30, 1e-20, 3e38, -3e38, Infinity, -Infinity, NaN, 1, -1, 0.5, 1e-8, 0];
  const m = [0, 0, 0, 1e-40, -1e-30, 0, 1, -1, 0, 0, 0, NaN, Infinity, -Infinity, 0, 1];
  const v = [0, 0, 1e-45, 1e-40, 0, 0, 0, 3e38, 1, 0, 0, 0, 0, 0, -1, Infinity];
  const p = g.map((_, i) => (i % 3) - 1 + i * 1e-3);
  return { p: Float32Array.from(p), g: Float32Array.from(g), m: Float32Array.from(m), v: Float32Array.from(v) };
}
const SPECIAL: Case = { shape: [16], seed: 0, lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 1, scale: 1 };

describe.skipIf(!built)('PeftAdam on the cpu backend', () => {
  it('is registered and used by Adam', () => {
    expect(fusedKernelActive(PEFT_ADAM)).toBe(true);
    expect(without(() => fusedKernelActive(PEFT_ADAM))).toBe(false);
  });

  it('is bit-identical to the composite form (sizes 0, 1, odd, LoRA shapes; random hyperparameters and steps)', () => {
    for (const c of cases(Math.max(RUNS * 4, SHAPES.length * 2), 11)) {
      const s = inputs(c);
      expectSameBits(update(c, s), without(() => update(c, s)), JSON.stringify(c));
    }
  });

  it('is bit-identical on special values (subnormals, overflow, infinities, NaN, negative v)', () => {
    const s = specialInputs();
    for (const step of [1, 7]) {
      const c = { ...SPECIAL, step };
      expectSameBits(update(c, s), without(() => update(c, s)), `special values, step ${step}`);
    }
  });

  it('is bit-identical on the threaded path, and on one thread', () => {
    load.addon!.setThreads(2);
    onTestFinished(() => load.addon!.setThreads((load as { threads: number }).threads));
    // 262157 elements: four parts of the 64k-element grain, a ragged end
    const c: Case = { shape: [262157], seed: 5, lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 3, scale: 1e-2 };
    const s = inputs(c);
    const two = update(c, s);
    expectSameBits(two, without(() => update(c, s)), 'threaded');
    load.addon!.setThreads(1);
    expectSameBits(update(c, s), two, '1 vs 2 threads');
  });

  it('leaves no tensors behind', () => {
    const c: Case = { shape: [4, 192], seed: 1, lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 2, scale: 1 };
    const s = inputs(c);
    update(c, s);
    const before = tf.memory();
    for (let i = 0; i < 3; i++) update(c, s);
    expect(tf.memory().numTensors).toBe(before.numTensors);
    expect(tf.memory().numBytes).toBe(before.numBytes);
  });

  it('checks its inputs and attrs', () => {
    tf.tidy(() => {
      const t = tf.ones([3]);
      const attrs = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 1 };
      const run = (inputs: tf.NamedTensorMap, a: object) => tf.engine().runKernel(PEFT_ADAM, inputs, a as tf.NamedAttrMap);
      expect(() => run({ p: t, g: t, m: t, v: tf.ones([4]) }, attrs)).toThrow(/shapes .* differ/);
      expect(() => run({ p: t, g: t, m: t, v: t }, { ...attrs, step: undefined })).toThrow(/attr step must be a number/);
      expect(() => run({ p: t, g: tf.ones([3], 'int32'), m: t, v: t }, attrs)).toThrow(/float32/);
    });
  });

  it('rejects ranges and scalars it cannot use in C++', () => {
    const a = load.addon!;
    const x = new Float32Array(10);
    const sc = new Float64Array(7);
    const ok = Int32Array.of(2, 5, 0, 0, 0, 0, 0, 0, 0);
    expect(() => a.adam(x, x, x, x, new Float32Array(10), new Float32Array(10), new Float32Array(10), ok, sc)).not.toThrow();
    expect(() => a.adam(x, x, x, x, x, x, new Float32Array(9), ok, sc)).toThrow(/adam vOut.*outside the array/);
    expect(() => a.adam(x, x, x, x, x, x, x, Int32Array.of(2, 5, 0, 1, 0, 0, 0, 0, 0), sc)).toThrow(/adam g.*outside the array/);
    expect(() => a.adam(x, x, x, x, x, x, x, Int32Array.of(-2, 5, 0, 0, 0, 0, 0, 0, 0), sc)).toThrow(/negative size/);
    expect(() => a.adam(x, x, x, x, x, x, x, Int32Array.of(2, 5, 0, 0, 0, 0, 0, 0), sc)).toThrow(/wrong length/);
    expect(() => a.adam(x, x, x, x, x, x, x, ok, new Float64Array(6))).toThrow(/adam scalars: wrong length 6, expected 7/);
    expect(() => a.adam(x, x, x, x, x, x, x, ok, new Float32Array(7) as unknown as Float64Array)).toThrow(/adam scalars: expected a Float64Array/);
    expect(() => (a.adam as (...args: unknown[]) => void)(x, x, x, x, x, x, x, ok)).toThrow(/Float64Array of 7 scalars/);
  });

  it('computes the scalars in double and rounds each once (a hand-checked element)', () => {
    // p=1, g=0.5, m=0.25, v=0.0625 at step 2 with lr 1e-3: the update in float32, one rounding per operation
    const c: Case = { shape: [1], seed: 0, lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 2, scale: 1 };
    const s: State = { p: Float32Array.of(1), g: Float32Array.of(0.5), m: Float32Array.of(0.25), v: Float32Array.of(0.0625) };
    const f = Math.fround;
    const mi = f(f(0.25 * f(0.9)) + f(0.5 * f(1 - 0.9)));
    const vi = f(f(0.0625 * f(0.999)) + f(f(0.5 * 0.5) * f(1 - 0.999)));
    const denom = f(f(f(Math.sqrt(vi)) / f(Math.sqrt(1 - 0.999 ** 2))) + f(1e-8));
    const pi = f(1 - f(f(mi / denom) * f(1e-3 / (1 - 0.9 ** 2))));
    expectSameBits(update(c, s), [Float32Array.of(pi), Float32Array.of(mi), Float32Array.of(vi)], 'hand-checked');
  });
});

describe.skipIf(!built || !wasmOk)('PeftAdam on the wasm backend (in place on the wasm heap)', () => {
  const onWasm = <T>(f: () => T) =>
    onBackend('wasm', () => {
      registerNativeKernels('wasm');
      return f();
    });

  it('is registered on wasm', async () => {
    expect(await onWasm(() => fusedKernelActive(PEFT_ADAM))).toBe(true);
  });

  it('is bit-identical to the wasm composite form and to the cpu backend (both ways)', async () => {
    const all: [Case, State][] = [
      ...cases(Math.max(RUNS * 2, SHAPES.length), 23).map((c): [Case, State] => [c, inputs(c)]),
      [SPECIAL, specialInputs()],
      [{ ...SPECIAL, step: 7 }, specialInputs()],
    ];
    for (const [c, s] of all) {
      const cpuNative = update(c, s);
      const cpuComposite = without(() => update(c, s));
      const [wasmNative, wasmComposite] = await onWasm(() => [update(c, s), without(() => update(c, s))]);
      const label = JSON.stringify(c);
      expectSameBits(wasmNative!, wasmComposite!, `wasm native vs wasm composite ${label}`);
      expectSameBits(wasmNative!, cpuComposite, `wasm native vs cpu composite ${label}`);
      expectSameBits(cpuNative, wasmComposite!, `cpu native vs wasm composite ${label}`);
    }
  });

  it('is bit-identical on the threaded path', async () => {
    load.addon!.setThreads(2);
    onTestFinished(() => load.addon!.setThreads((load as { threads: number }).threads));
    const c: Case = { shape: [262157], seed: 6, lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 5, scale: 1 };
    const s = inputs(c);
    await onWasm(() => expectSameBits(update(c, s), without(() => update(c, s)), 'wasm threaded'));
  });

  it('leaves no tensors or wasm memory behind', async () => {
    await onWasm(() => {
      const heap = () => (tf.backend() as unknown as { wasm: { HEAPF32: Float32Array } }).wasm.HEAPF32.length;
      const c: Case = { shape: [768, 4], seed: 2, lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 2, scale: 1 };
      const s = inputs(c);
      update(c, s);
      const before = { ...tf.memory(), heap: heap() };
      for (let i = 0; i < 5; i++) update(c, s);
      const after = { ...tf.memory(), heap: heap() };
      expect(after.numTensors).toBe(before.numTensors);
      expect(after.numBytes).toBe(before.numBytes);
      expect(after.heap).toBe(before.heap);
    });
  });
});
