// Adam.apply with the native kernels against its composite form (the native
// kernels off, as with PEFT_NATIVE=0): one PeftAdamMulti call a step for every
// parameter (or, without it, one PeftAdam per parameter), bit-identical
// trajectories (also over random shapes, sizes 0 and 1, odd sizes and tensors
// larger than a thread's share, split between threads) over several steps with a changing rate, a flat
// tensor count, and checkpoint resume (state() / load()) unchanged, on cpu and
// on wasm. The native tests are skipped with the reason when the addon is not
// built; the composite ones always run.
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ensureWasmBackend, onBackend } from '../../../test/support/kernels.js';
import { PEFT_ADAM, PEFT_ADAM_MULTI } from '../../accel/native/fused-names.js';
import { registerNativeKernels, setNativeKernelsEnabled } from '../../accel/native/index.js';
import { RUNS, built, whyNotBuilt, without } from '../../../test/support/native.js';
import { Parameter } from '../../core/nn/parameter.js';
import { seededValues } from '../../../test/support/reference-math.js';
import { Adam } from './adam.js';

if (!built) console.log(`native Adam trajectory tests skipped: ${whyNotBuilt}`);
const wasmOk = await ensureWasmBackend();

// LoRA-like A/B pairs, a bias, a one-element scale
const SHAPES: Record<string, number[]> = {
  'q.lora_A': [4, 192],
  'q.lora_B': [192, 4],
  'mlp.lora_A': [4, 768],
  'mlp.lora_B': [768, 4],
  bias: [37],
  scale: [1],
};

/** Arrays by name: parameters, then m/<name>, v/<name>. */
type Snapshot = Map<string, Float32Array>;

/** The gradients of step `step` (seeded; the same on every backend). */
function gradsFor(step: number): Map<string, Float32Array> {
  const r = seededValues(1000 + step);
  return new Map(Object.entries(SHAPES).map(([name, shape]) => [name, Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => r(-1, 1) * 10 ** r(-6, 1))]));
}

function initial(): Map<string, Float32Array> {
  const r = seededValues(7);
  return new Map(Object.entries(SHAPES).map(([name, shape]) => [name, Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => r(-0.5, 0.5))]));
}

class Run {
  readonly params: [string, Parameter][];
  readonly adam = new Adam({ lr: 2e-3 });

  constructor(values: Map<string, Float32Array> = initial()) {
    this.params = Object.entries(SHAPES).map(([name, shape]) => {
      const t = tf.tensor(values.get(name)!, shape);
      const p = new Parameter(t);
      t.dispose();
      return [name, p];
    });
  }

  /** Steps first..last (inclusive), each with its gradients and a cosine rate. */
  steps(first: number, last: number, onStep?: (snap: Snapshot) => void): void {
    for (let s = first; s <= last; s++) {
      this.adam.lr = 2e-3 * 0.5 * (1 + Math.cos((Math.PI * (s - 1)) / 10));
      const grads = new Map([...gradsFor(s)].map(([name, g]) => [name, tf.tensor(g, SHAPES[name]!)]));
      this.adam.apply(this.params, grads);
      tf.dispose([...grads.values()]);
      onStep?.(this.snapshot());
    }
  }

  snapshot(): Snapshot {
    const out: Snapshot = new Map();
    for (const [name, p] of this.params) out.set(name, p.variable.dataSync().slice() as Float32Array);
    for (const [key, t] of this.adam.state()) out.set(key, t.dataSync().slice() as Float32Array);
    return out;
  }

  dispose(): void {
    for (const [, p] of this.params) p.dispose();
    this.adam.dispose();
  }
}

/** Every snapshot of a run of `steps` steps. */
function trajectory(steps: number): Snapshot[] {
  const run = new Run();
  const snaps: Snapshot[] = [];
  try {
    run.steps(1, steps, (s) => snaps.push(s));
  } finally {
    run.dispose();
  }
  return snaps;
}

function expectSameBits(got: Snapshot, want: Snapshot, label: string): void {
  expect([...got.keys()].sort(), label).toEqual([...want.keys()].sort());
  for (const [key, a] of got) {
    const b = want.get(key)!;
    const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
    const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
    let differ = 0;
    for (let i = 0; i < a.length; i++) if (ua[i] !== ub[i]) differ++;
    expect(differ, `${label} ${key}: ${differ} of ${a.length} elements differ`).toBe(0);
  }
}

/** The kernels Adam.apply runs for one step. */
async function kernelsOfStep(): Promise<string[]> {
  const run = new Run();
  try {
    run.steps(1, 1);
    const grads = new Map([...gradsFor(2)].map(([name, g]) => [name, tf.tensor(g, SHAPES[name]!)]));
    const info = await tf.profile(() => run.adam.apply(run.params, grads));
    tf.dispose([...grads.values()]);
    return info.kernels.map((k) => k.name);
  } finally {
    run.dispose();
  }
}

/** Checkpoint resume: `split` steps, state() copied out, a fresh Adam load()ed, the rest; the final snapshot. */
function resumed(split: number, total: number, firstPart: <T>(f: () => T) => T, secondPart: <T>(f: () => T) => T): Snapshot {
  const a = new Run();
  let saved: Snapshot;
  try {
    firstPart(() => a.steps(1, split));
    saved = a.snapshot();
  } finally {
    a.dispose();
  }
  const b = new Run(saved);
  try {
    const state = new Map([...saved].filter(([k]) => k.startsWith('m/') || k.startsWith('v/')).map(([k, d]) => [k, tf.tensor(d, SHAPES[k.slice(2)]!)]));
    b.adam.load(split, state);
    tf.dispose([...state.values()]);
    secondPart(() => b.steps(split + 1, total));
    return b.snapshot();
  } finally {
    b.dispose();
  }
}

const native = <T>(f: () => T): T => f();

/** Runs `f` with PeftAdamMulti unregistered on the active backend (the per-parameter PeftAdam path), then puts it back. */
function perTensor<T>(f: () => T): T {
  const backend = tf.getBackend();
  const config = tf.getKernel(PEFT_ADAM_MULTI, backend);
  if (!config) throw new Error(`${PEFT_ADAM_MULTI} is not registered on ${backend}`);
  tf.unregisterKernel(PEFT_ADAM_MULTI, backend);
  try {
    return f();
  } finally {
    tf.registerKernel(config);
  }
}

/**
 * Every snapshot of `steps` steps over parameters of `shapes` (their values and gradients seeded), a rate
 * changing each step; parameter `skip` (if any) has no gradient at odd steps.
 */
function randomTrajectory(shapes: number[][], seed: number, steps: number, skip: number): Snapshot[] {
  const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
  const r = seededValues(seed);
  const params: [string, Parameter][] = shapes.map((shape, i) => {
    const t = tf.tensor(Float32Array.from({ length: size(shape) }, () => r(-1, 1)), shape);
    const p = new Parameter(t);
    t.dispose();
    return [`p${i}`, p];
  });
  const adam = new Adam({ lr: 1e-2, beta1: 0.8, beta2: 0.99, eps: 1e-6 });
  const snaps: Snapshot[] = [];
  try {
    for (let s = 1; s <= steps; s++) {
      adam.lr = 1e-2 / s;
      const grads = new Map<string, tf.Tensor>();
      shapes.forEach((shape, i) => {
        if (i === skip && s % 2 === 1) return;
        // gradients over many magnitudes, some exactly 0
        grads.set(`p${i}`, tf.tensor(Float32Array.from({ length: size(shape) }, () => (r(0, 1) < 0.05 ? 0 : r(-1, 1) * 10 ** r(-7, 2))), shape));
      });
      adam.apply(params, grads);
      tf.dispose([...grads.values()]);
      const snap: Snapshot = new Map();
      for (const [name, p] of params) snap.set(name, p.variable.dataSync().slice() as Float32Array);
      for (const [key, t] of adam.state()) snap.set(key, t.dataSync().slice() as Float32Array);
      snaps.push(snap);
    }
  } finally {
    for (const [, p] of params) p.dispose();
    adam.dispose();
  }
  return snaps;
}

const shapeArb = fc.oneof(
  fc.constantFrom<number[]>([0], [1], [], [3, 0], [7], [1, 1]),
  fc.array(fc.integer({ min: 1, max: 23 }), { minLength: 1, maxLength: 3 }),
  // larger than a thread's share (65,536 elements), so that the split falls inside tensors
  fc.constantFrom<number[]>([70001], [257, 513]),
);
const STEPS = 6;

describe('Adam (composite form)', () => {
  it('keeps the tensor count flat across steps', () => {
    without(() => {
      const run = new Run();
      try {
        run.steps(1, 1);
        const before = tf.memory();
        run.steps(2, 4);
        expect(tf.memory().numTensors).toBe(before.numTensors);
        expect(tf.memory().numBytes).toBe(before.numBytes);
      } finally {
        run.dispose();
      }
    });
  });
});

describe.skipIf(!built)('Adam with the native kernels (cpu backend)', () => {
  it('runs one PeftAdamMulti a step, one PeftAdam per parameter without it, and the composite kernels without either', async () => {
    expect(await kernelsOfStep()).toEqual([PEFT_ADAM_MULTI]);
    expect(await perTensor(kernelsOfStep)).toEqual(Object.keys(SHAPES).map(() => PEFT_ADAM));
    setNativeKernelsEnabled(false);
    let composite: string[];
    try {
      composite = await kernelsOfStep();
    } finally {
      setNativeKernelsEnabled(true);
    }
    expect(composite).not.toContain(PEFT_ADAM);
    expect(composite).not.toContain(PEFT_ADAM_MULTI);
    expect(composite).toEqual(expect.arrayContaining(['Multiply', 'Add', 'Square', 'Sqrt', 'RealDiv', 'Sub']));
  });

  it('gives a trajectory bit-identical to the composite form (PEFT_NATIVE=0) over several steps', () => {
    const got = trajectory(STEPS);
    const want = without(() => trajectory(STEPS));
    expect(got).toHaveLength(STEPS);
    got.forEach((s, i) => expectSameBits(s, want[i]!, `step ${i + 1}`));
    // the parameters did move
    expect(got[STEPS - 1]!.get('q.lora_A')).not.toEqual(initial().get('q.lora_A'));
    const each = perTensor(() => trajectory(STEPS));
    each.forEach((s, i) => expectSameBits(s, want[i]!, `per-parameter step ${i + 1}`));
  });

  it('PeftAdamMulti, PeftAdam and the composite form agree bit for bit over random shapes (sizes 0, 1, odd, split between threads)', () => {
    fc.assert(
      fc.property(fc.array(shapeArb, { minLength: 1, maxLength: 8 }), fc.integer({ min: 1, max: 1e6 }), fc.integer({ min: -1, max: 7 }), (shapes, seed, skip) => {
        const steps = 3;
        const got = randomTrajectory(shapes, seed, steps, skip);
        const each = perTensor(() => randomTrajectory(shapes, seed, steps, skip));
        const want = without(() => randomTrajectory(shapes, seed, steps, skip));
        for (let i = 0; i < steps; i++) {
          expectSameBits(got[i]!, want[i]!, `multi step ${i + 1}`);
          expectSameBits(each[i]!, want[i]!, `per-parameter step ${i + 1}`);
        }
      }),
      { numRuns: Math.max(5, Math.round(RUNS / 2)) },
    );
  });

  it('PeftAdamMulti checks its inputs', () => {
    const [p, g] = [tf.ones([3]), tf.ones([4])];
    const attrs = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 1 };
    try {
      expect(() => tf.engine().runKernel(PEFT_ADAM_MULTI, { p0: p, g0: g, m0: p, v0: p }, { ...attrs, count: 1 })).toThrow(/differ/);
      expect(() => tf.engine().runKernel(PEFT_ADAM_MULTI, { p0: p, g0: p, m0: p }, { ...attrs, count: 1 })).toThrow(/expected/);
      expect(() => tf.engine().runKernel(PEFT_ADAM_MULTI, { p0: p, g0: p, m0: p, v0: p }, { ...attrs, count: 1.5 })).toThrow(/count/);
    } finally {
      tf.dispose([p, g]);
    }
  });

  it('keeps the tensor count and bytes flat across steps', () => {
    const run = new Run();
    try {
      run.steps(1, 1);
      const before = tf.memory();
      run.steps(2, 5);
      expect(tf.memory().numTensors).toBe(before.numTensors);
      expect(tf.memory().numBytes).toBe(before.numBytes);
    } finally {
      run.dispose();
    }
  });

  it('resumes from a checkpoint exactly as before, across native and composite', () => {
    const straight = without(() => trajectory(STEPS))[STEPS - 1]!;
    expectSameBits(resumed(3, STEPS, native, native), straight, 'native, resumed native');
    expectSameBits(resumed(3, STEPS, without, native), straight, 'composite, resumed native');
    expectSameBits(resumed(2, STEPS, native, without), straight, 'native, resumed composite');
    expectSameBits(resumed(3, STEPS, perTensor, native), straight, 'per-parameter, resumed multi');
  });
});

describe.skipIf(!built || !wasmOk)('Adam with the native PeftAdam kernel (wasm backend)', () => {
  const onWasm = <T>(f: () => T) =>
    onBackend('wasm', () => {
      registerNativeKernels('wasm');
      return f();
    });

  it('runs one PeftAdamMulti a step (one PeftAdam per parameter without it)', async () => {
    expect(await onWasm(kernelsOfStep)).toEqual([PEFT_ADAM_MULTI]);
    expect(await onWasm(() => perTensor(kernelsOfStep))).toEqual(Object.keys(SHAPES).map(() => PEFT_ADAM));
  });

  it('gives a trajectory bit-identical to the wasm composite form and to the cpu backend', async () => {
    const cpu = without(() => trajectory(STEPS));
    const [got, want, each] = await onWasm(() => [trajectory(STEPS), without(() => trajectory(STEPS)), perTensor(() => trajectory(STEPS))]);
    got!.forEach((s, i) => {
      expectSameBits(s, want![i]!, `wasm step ${i + 1}`);
      expectSameBits(each![i]!, want![i]!, `wasm per-parameter step ${i + 1}`);
      expectSameBits(s, cpu[i]!, `wasm vs cpu step ${i + 1}`);
    });
  });

  it('keeps the tensor count, bytes and wasm heap flat across steps', async () => {
    await onWasm(() => {
      const heap = () => (tf.backend() as unknown as { wasm: { HEAPF32: Float32Array } }).wasm.HEAPF32.length;
      const run = new Run();
      try {
        run.steps(1, 1);
        const before = { ...tf.memory(), heap: heap() };
        run.steps(2, 5);
        expect(tf.memory().numTensors).toBe(before.numTensors);
        expect(tf.memory().numBytes).toBe(before.numBytes);
        expect(heap()).toBe(before.heap);
      } finally {
        run.dispose();
      }
    });
  });
});
