// PeftSensitivityEma (native/src/importance.cc) against the composite form of
// core sensitivityEma (src/core/nn/sensitivity-ema.ts, the native kernels off):
// BIT-identical averages over many sizes (0, 1, odd, not a multiple of the 4
// lanes, LoRA shapes, threaded), random betas (float32 or not), first updates
// (no previous averages) and later ones, and special values (signed zeros,
// subnormals, overflow, infinities, NaN); on cpu and on wasm (in place on the
// wasm heap), and across the two. Skipped with the reason when the addon is
// not built.
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ensureWasmBackend, onBackend } from '../../../test/support/kernels.js';
import { seededValues } from '../../../test/support/reference-math.js';
import { sensitivityEma } from '../../core/nn/sensitivity-ema.js';
import { PEFT_SENSITIVITY_EMA } from './fused-names.js';
import { fusedKernelActive, registerNativeKernels } from './index.js';
import { RUNS, built, load, whyNotBuilt, without, expectSameBits as sameBits } from '../../../test/support/native.js';

if (!built) console.log(`native sensitivity-average tests skipped: ${whyNotBuilt}`);
const wasmOk = await ensureWasmBackend();

interface Case {
  shape: number[];
  seed: number;
  beta1: number;
  beta2: number;
  /** Which previous averages there are (none: the first update). */
  prev: 'none' | 'both' | 'ema' | 'unc';
  /** The magnitude of p and g. */
  scale: number;
}

interface State {
  p: Float32Array;
  g: Float32Array;
  ema: Float32Array;
  unc: Float32Array;
}

const SHAPES = [[], [0], [1], [2], [3], [4], [5], [7], [8], [9], [1, 1], [4, 1], [4, 0], [13, 17], [4, 192], [192, 4], [4, 768], [768, 4], [3, 5, 7], [1000], [4099]];

function cases(count: number, seed: number): Case[] {
  const r = seededValues(seed);
  const pick = <T>(xs: T[]) => xs[Math.floor(r(0, 1) * xs.length) % xs.length]!;
  // a beta that is not a float32 (its 1 - beta rounds differently in double and in float32)
  const beta = () => pick([0.85, 0.9, 0.95, 0.999, 0, 1, r(0, 1), r(0, 1) + r(0, 1) * 2 ** -30]);
  const out: Case[] = [];
  for (let i = 0; i < count; i++) {
    out.push({
      shape: SHAPES[i % SHAPES.length]!,
      seed: Math.floor(r(0, 1e6)),
      beta1: beta(),
      beta2: beta(),
      prev: pick(['none', 'both', 'both', 'both', 'ema', 'unc']),
      scale: pick([1, 1e-20, 1e-4, 1e3, 1e19, 10 ** r(-8, 2)]),
    });
  }
  return out;
}

function inputs(c: Case): State {
  const n = c.shape.reduce((a, b) => a * b, 1);
  const r = seededValues(c.seed);
  const fill = (f: () => number) => Float32Array.from({ length: n }, f);
  const s2 = c.scale * c.scale;
  return {
    p: fill(() => r(-1, 1) * c.scale),
    g: fill(() => r(-1, 1) * c.scale),
    ema: fill(() => r(0, 1) * s2),
    unc: fill(() => r(0, 1) * s2),
  };
}

/** One sensitivityEma on the active backend: ema', unc' as arrays. */
function update(c: Case, s: State): Float32Array[] {
  const t = (a: Float32Array) => tf.tensor(a, c.shape, 'float32');
  const p = t(s.p);
  const g = t(s.g);
  const ema0 = c.prev === 'both' || c.prev === 'ema' ? t(s.ema) : undefined;
  const unc0 = c.prev === 'both' || c.prev === 'unc' ? t(s.unc) : undefined;
  const out = sensitivityEma(p, g, ema0, unc0, c.beta1, c.beta2);
  try {
    return [out.ema, out.unc].map((x) => x.dataSync().slice() as Float32Array);
  } finally {
    tf.dispose([p, g, ema0, unc0, out.ema, out.unc].filter((x): x is tf.Tensor => x !== undefined));
  }
}

/** The same bits at every index (any NaN equals any NaN). */
function expectSameBits(got: Float32Array[], want: Float32Array[], label: string): void {
  sameBits(got, want, label, ['ema', 'unc']);
}

/** Special values: zeros (both signs), subnormals, huge (products overflow), infinite, NaN, negative averages. */
function specialInputs(): State {
  const p = [0, -0, 1e-45, -1e-40, 1e-30, 1e-20, 3e38, -3e38, Infinity, -Infinity, NaN, 1, -1, 0.5, 1e-8, 0, -0, 2, 1e20, -7];
  const g = [0, 0, 1e-45, 1e-40, -1e-30, 1e-20, 2, 3e38, 0, -1, 1, NaN, Infinity, -Infinity, 1e-38, -0, -0, -0, 1e20, 1e-45];
  const ema = [0, -0, 1e-45, 1e-40, 0, -0, 3e38, 1, 0, NaN, 0, 1, Infinity, 0, -1, -Infinity, 0, -0, 1, 5];
  const unc = [-0, 0, 0, 1e-40, 1e-45, 0, 3e38, Infinity, NaN, 0, 1, 0, 0, -Infinity, 0, 1, -0, 0, 1, -5];
  return { p: Float32Array.from(p), g: Float32Array.from(g), ema: Float32Array.from(ema), unc: Float32Array.from(unc) };
}
const SPECIAL: Case = { shape: [20], seed: 0, beta1: 0.85, beta2: 0.85, prev: 'both', scale: 1 };
/** The special values under every kind of previous state and some betas (0, 1, > 1, infinite, NaN included). */
const SPECIAL_CASES: Case[] = (['none', 'both', 'ema', 'unc'] as const).flatMap((prev) =>
  [
    [0.85, 0.85],
    [0.9, 0.999],
    [0, 1],
    [1, 0],
    [1.5, -0.5],
    [Infinity, -Infinity],
    [NaN, 0.5],
  ].map(([beta1, beta2]): Case => ({ ...SPECIAL, prev, beta1: beta1!, beta2: beta2! })),
);

describe.skipIf(!built)('PeftSensitivityEma on the cpu backend', () => {
  it('is registered and used by sensitivityEma: one kernel per update', async () => {
    expect(fusedKernelActive(PEFT_SENSITIVITY_EMA)).toBe(true);
    expect(without(() => fusedKernelActive(PEFT_SENSITIVITY_EMA))).toBe(false);
    const p = tf.ones([4, 192]);
    const kernels = async (prev: tf.Tensor | undefined) =>
      (
        await tf.profile(() => {
          const out = sensitivityEma(p, p, prev, prev, 0.85, 0.85);
          tf.dispose([out.ema, out.unc]);
        })
      ).kernels.map((k) => k.name);
    expect(await kernels(p)).toEqual([PEFT_SENSITIVITY_EMA]);
    expect(await kernels(undefined)).toEqual([PEFT_SENSITIVITY_EMA]);
    p.dispose();
  });

  it('is bit-identical to the composite form (sizes 0, 1, odd, LoRA shapes; random betas; first and later updates)', () => {
    for (const c of cases(Math.max(RUNS * 4, SHAPES.length * 3), 17)) {
      const s = inputs(c);
      expectSameBits(update(c, s), without(() => update(c, s)), JSON.stringify(c));
    }
  });

  it('is bit-identical on special values (signed zeros, subnormals, overflow, infinities, NaN; odd betas)', () => {
    const s = specialInputs();
    for (const c of SPECIAL_CASES) expectSameBits(update(c, s), without(() => update(c, s)), `special values ${JSON.stringify(c)}`);
  });

  it('takes a missing previous average as zeros, exactly', () => {
    const s = specialInputs();
    const zeros = { ...s, ema: new Float32Array(s.p.length), unc: new Float32Array(s.p.length) };
    for (const [beta1, beta2] of [
      [0.85, 0.85],
      [Infinity, NaN],
    ]) {
      const c = { ...SPECIAL, beta1: beta1!, beta2: beta2! };
      expectSameBits(update({ ...c, prev: 'none' }, s), update({ ...c, prev: 'both' }, zeros), `first update ${beta1}, ${beta2}`);
    }
  });

  it('is bit-identical on the threaded path, and on one thread', () => {
    load.addon!.setThreads(2);
    onTestFinished(() => load.addon!.setThreads((load as { threads: number }).threads));
    // 262157 elements: four parts of the 64k-element grain, a ragged end
    const c: Case = { shape: [262157], seed: 5, beta1: 0.85, beta2: 0.9, prev: 'both', scale: 1e-2 };
    const s = inputs(c);
    const two = update(c, s);
    expectSameBits(two, without(() => update(c, s)), 'threaded');
    load.addon!.setThreads(1);
    expectSameBits(update(c, s), two, '1 vs 2 threads');
  });

  it('computes 1 - beta in double and rounds each scalar once (a hand-checked element)', () => {
    // beta 0.85 is not a float32: f(1 - 0.85) differs from f(1 - f(0.85))
    const f = Math.fround;
    expect(f(1 - 0.85)).not.toBe(f(1 - f(0.85)));
    const c: Case = { shape: [1], seed: 0, beta1: 0.85, beta2: 0.85, prev: 'both', scale: 1 };
    const s: State = { p: Float32Array.of(0.3), g: Float32Array.of(-0.7), ema: Float32Array.of(0.25), unc: Float32Array.of(0.0625) };
    const ipt = Math.abs(f(f(0.3) * f(-0.7)));
    const ema = f(f(0.25 * f(0.85)) + f(ipt * f(1 - 0.85)));
    const unc = f(f(0.0625 * f(0.85)) + f(Math.abs(f(ipt - ema)) * f(1 - 0.85)));
    expectSameBits(update(c, s), [Float32Array.of(ema), Float32Array.of(unc)], 'hand-checked');
  });

  it('leaves no tensors behind', () => {
    const c: Case = { shape: [4, 192], seed: 1, beta1: 0.85, beta2: 0.85, prev: 'both', scale: 1 };
    const s = inputs(c);
    update(c, s);
    const before = tf.memory();
    for (let i = 0; i < 3; i++) update(c, s);
    update({ ...c, prev: 'none' }, s);
    expect(tf.memory().numTensors).toBe(before.numTensors);
    expect(tf.memory().numBytes).toBe(before.numBytes);
  });

  it('checks its inputs and attrs', () => {
    tf.tidy(() => {
      const t = tf.ones([3]);
      const attrs = { beta1: 0.85, beta2: 0.85 };
      const run = (inputs: tf.NamedTensorMap, a: object) => tf.engine().runKernel(PEFT_SENSITIVITY_EMA, inputs, a as tf.NamedAttrMap);
      expect(() => run({ p: t, g: t, ema: t, unc: tf.ones([4]) }, attrs)).toThrow(/shapes .* differ/);
      expect(() => run({ p: t, g: tf.ones([1, 3]) }, attrs)).toThrow(/shapes .* differ/);
      expect(() => run({ p: t, g: t }, { beta1: 0.85 })).toThrow(/attr beta2 must be a number/);
      expect(() => run({ p: t, g: tf.ones([3], 'int32') }, attrs)).toThrow(/float32/);
      expect(() => run({ p: t, g: t }, attrs)).not.toThrow();
    });
  });

  it('falls back to the composite form for other dtypes and broadcasting', () => {
    tf.tidy(() => {
      const p = tf.tensor([1, -2, 3], [3]);
      const viaInt = sensitivityEma(p, tf.tensor([2, 2, 2], [3], 'int32'), undefined, undefined, 0.5, 0.5);
      const viaBroadcast = sensitivityEma(p, tf.scalar(2), undefined, undefined, 0.5, 0.5);
      for (const out of [viaInt, viaBroadcast]) {
        expect([...out.ema.dataSync()]).toEqual([1, 2, 3]);
        expect([...out.unc.dataSync()]).toEqual([0.5, 1, 1.5]);
      }
    });
  });

  it('rejects ranges and scalars it cannot use in C++', () => {
    const a = load.addon!;
    const x = new Float32Array(10);
    const sc = new Float64Array(4);
    const ok = Int32Array.of(2, 5, 0, 0, 0, 0, 0, 0);
    const out = () => new Float32Array(10);
    expect(() => a.importanceEma(x, x, x, x, out(), out(), ok, sc)).not.toThrow();
    expect(() => a.importanceEma(x, x, null, null, out(), out(), ok, sc)).not.toThrow();
    expect(() => a.importanceEma(x, x, x, x, out(), new Float32Array(9), ok, sc)).toThrow(/importanceEma uncOut.*outside the array/);
    expect(() => a.importanceEma(x, x, new Float32Array(9), x, out(), out(), ok, sc)).toThrow(/importanceEma ema.*outside the array/);
    expect(() => a.importanceEma(x, x, x, x, out(), out(), Int32Array.of(2, 5, 0, 1, 0, 0, 0, 0), sc)).toThrow(/importanceEma g.*outside the array/);
    expect(() => a.importanceEma(x, x, x, x, out(), out(), Int32Array.of(-2, 5, 0, 0, 0, 0, 0, 0), sc)).toThrow(/negative size/);
    expect(() => a.importanceEma(x, x, x, x, out(), out(), Int32Array.of(2, 5, 0, 0, 0, 0, 0), sc)).toThrow(/wrong length/);
    expect(() => a.importanceEma(x, x, x, x, out(), out(), ok, new Float64Array(3))).toThrow(/importanceEma scalars: wrong length 3, expected 4/);
    expect(() => a.importanceEma(x, x, x, x, out(), out(), ok, new Float32Array(4) as unknown as Float64Array)).toThrow(/expected a Float64Array/);
    expect(() => (a.importanceEma as (...args: unknown[]) => void)(x, x, x, x, out(), out(), ok)).toThrow(/Float64Array of 4 scalars/);
  });
});

describe.skipIf(!built || !wasmOk)('PeftSensitivityEma on the wasm backend (in place on the wasm heap)', () => {
  const onWasm = <T>(f: () => T) =>
    onBackend('wasm', () => {
      registerNativeKernels('wasm');
      return f();
    });

  it('is registered on wasm', async () => {
    expect(await onWasm(() => fusedKernelActive(PEFT_SENSITIVITY_EMA))).toBe(true);
  });

  it('is bit-identical to the wasm composite form and to the cpu backend (both ways)', async () => {
    const all: [Case, State][] = [...cases(Math.max(RUNS * 2, SHAPES.length * 2), 29).map((c): [Case, State] => [c, inputs(c)]), ...SPECIAL_CASES.map((c): [Case, State] => [c, specialInputs()])];
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
    const c: Case = { shape: [262157], seed: 6, beta1: 0.85, beta2: 0.85, prev: 'both', scale: 1 };
    const s = inputs(c);
    await onWasm(() => expectSameBits(update(c, s), without(() => update(c, s)), 'wasm threaded'));
  });

  it('leaves no tensors or wasm memory behind', async () => {
    await onWasm(() => {
      const heap = () => (tf.backend() as unknown as { wasm: { HEAPF32: Float32Array } }).wasm.HEAPF32.length;
      const c: Case = { shape: [768, 4], seed: 2, beta1: 0.85, beta2: 0.85, prev: 'both', scale: 1 };
      const s = inputs(c);
      update(c, s);
      const before = { ...tf.memory(), heap: heap() };
      for (let i = 0; i < 5; i++) update(c, s);
      update({ ...c, prev: 'none' }, s);
      const after = { ...tf.memory(), heap: heap() };
      expect(after.numTensors).toBe(before.numTensors);
      expect(after.numBytes).toBe(before.numBytes);
      expect(after.heap).toBe(before.heap);
    });
  });
});
