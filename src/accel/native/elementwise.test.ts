// The native Add, Sub, Multiply and RealDiv against the backends' own kernels
// (native kernels off), bit for bit: random shapes and broadcasts on cpu
// (operands of the output's shape, scalars, rows after leading 1s, and
// broadcasts that fall back), sizes that take the threaded path, the wasm
// backend above and below its size threshold; the layout rule; the range
// checks in C++; and the thread pool under many calls of every size.
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ensureWasmBackend, onBackend } from '../../../test/support/kernels.js';
import { binaryLayout, Mode, WASM_MIN_SIZE } from './elementwise-kernel.js';
import { registerNativeKernels } from './index.js';
import { RUNS, built, expectSameBits, load, whyNotBuilt, without } from '../../../test/support/native.js';

if (!built) console.log(`native elementwise tests skipped: ${whyNotBuilt}`);
// an addon built before these kernels: they fall back (the comparisons still hold), the C++ checks are skipped
const hasBinary = built && typeof (load.addon as { binary?: unknown } | undefined)?.binary === 'function';
if (built && !hasBinary) console.log('native elementwise C++ tests skipped: the addon has no `binary` (rebuild it)');
const wasmOk = await ensureWasmBackend();

type OpName = 'add' | 'sub' | 'mul' | 'div';
const OPS: OpName[] = ['add', 'sub', 'mul', 'div'];

function apply(op: OpName, a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  return op === 'add' ? tf.add(a, b) : op === 'sub' ? tf.sub(a, b) : op === 'mul' ? tf.mul(a, b) : tf.div(a, b);
}

/** Deterministic values in [-4, 4) with a few exact zeros, infinities and NaNs when `special`. */
function values(n: number, seed: number, special: boolean): Float32Array {
  const v = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    v[i] = (s / 2 ** 32) * 8 - 4;
    if (special && s % 97 === 0) v[i] = [0, -0, Infinity, -Infinity, NaN, 1e-40][s % 6]!;
  }
  return v;
}

function tensor(shape: number[], seed: number, special = true): tf.Tensor {
  return tf.tensor(values(shape.reduce((a, b) => a * b, 1), seed, special), shape, 'float32');
}

/** a op b with the native kernels and without, the same bits. */
function expectSame(op: OpName, a: tf.Tensor, b: tf.Tensor, label: string): void {
  tf.tidy(() => {
    const got = apply(op, a, b);
    const want = without(() => apply(op, a, b));
    expect(got.shape, label).toEqual(want.shape);
    expectSameBits([got.dataSync() as Float32Array], [want.dataSync() as Float32Array], label);
  });
}

// the other operand's shape, from the output's: the same, a scalar, a suffix (with leading 1s), or any broadcast
const binaryCase = fc
  .record({
    shape: fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 0, maxLength: 5 }),
    kind: fc.constantFrom('same', 'scalar', 'suffix', 'broadcast'),
    cut: fc.nat(),
    ones: fc.integer({ min: 0, max: 2 }),
    mask: fc.array(fc.boolean(), { minLength: 5, maxLength: 5 }),
    swap: fc.boolean(),
    op: fc.constantFrom(...OPS),
    seed: fc.integer({ min: 1, max: 1e6 }),
  })
  .map((c) => {
    let other: number[];
    if (c.kind === 'same') other = [...c.shape];
    else if (c.kind === 'scalar') other = Array<number>(c.ones).fill(1);
    else if (c.kind === 'suffix') other = [...Array<number>(c.ones).fill(1), ...c.shape.slice(c.cut % (c.shape.length + 1))];
    else other = c.shape.map((d, i) => (c.mask[i] ? 1 : d));
    return { ...c, a: c.swap ? other : c.shape, b: c.swap ? c.shape : other };
  });

describe('binaryLayout', () => {
  it('reads each operand in full, as a row, or as a scalar', () => {
    expect(binaryLayout([2, 3], [2, 3])).toEqual({ out: [2, 3], outer: 1, inner: 6, modes: [Mode.Full, Mode.Full] });
    expect(binaryLayout([2, 64, 64, 256], [256])).toEqual({ out: [2, 64, 64, 256], outer: 8192, inner: 256, modes: [Mode.Full, Mode.Row] });
    expect(binaryLayout([5, 196, 196], [8, 5, 196, 196])).toEqual({ out: [8, 5, 196, 196], outer: 8, inner: 192080, modes: [Mode.Row, Mode.Full] });
    expect(binaryLayout([1, 1, 4], [3, 4])).toEqual({ out: [1, 3, 4], outer: 3, inner: 4, modes: [Mode.Row, Mode.Full] });
    expect(binaryLayout([], [3, 4])).toEqual({ out: [3, 4], outer: 1, inner: 12, modes: [Mode.Scalar, Mode.Full] });
    expect(binaryLayout([3, 4], [1, 1])).toEqual({ out: [3, 4], outer: 1, inner: 12, modes: [Mode.Full, Mode.Scalar] });
    // the output's size is the same as a's, so a is read in full whatever its leading 1s
    expect(binaryLayout([1, 3, 4], [3, 4])?.modes).toEqual([Mode.Full, Mode.Full]);
  });

  it('leaves other broadcasts, empty and mismatched shapes to the replaced kernel', () => {
    expect(binaryLayout([3, 4], [3, 1])).toBeUndefined();
    expect(binaryLayout([2, 3, 4], [2, 1, 4])).toBeUndefined();
    expect(binaryLayout([3, 1], [1, 4])).toBeUndefined();
    expect(binaryLayout([0, 4], [4])).toBeUndefined();
    expect(binaryLayout([3, 4], [5])).toBeUndefined();
  });
});

describe.skipIf(!built)('native elementwise kernels', () => {
  it('are bit-identical to the cpu kernels (random shapes and broadcasts, special values)', () => {
    fc.assert(
      fc.property(binaryCase, (c) => {
        tf.tidy(() => expectSame(c.op, tensor(c.a, c.seed), tensor(c.b, c.seed + 1), JSON.stringify(c)));
      }),
      { numRuns: RUNS * 8 },
    );
  });

  it('are bit-identical on the threaded path (2 threads, the shapes of a training step)', () => {
    load.addon!.setThreads(2);
    try {
      const cases: [number[], number[]][] = [
        [[2, 64, 64, 256], [256]],
        [[8, 5, 196, 196], [5, 196, 196]],
        [[1, 5, 196, 196], [8, 5, 196, 196]],
        [[513, 769], [513, 769]],
        [[], [300001]],
        [[300001], [1]],
        [[4, 65537], [1, 65537]],
      ];
      for (const [sa, sb] of cases) {
        tf.tidy(() => {
          const a = tensor(sa, 11);
          const b = tensor(sb, 12);
          for (const op of OPS) expectSame(op, a, b, `${op} ${sa} ${sb}`);
        });
      }
    } finally {
      load.addon!.setThreads((load as { threads: number }).threads);
    }
  });

  it('leave other dtypes and broadcasts to the replaced kernel', () => {
    tf.tidy(() => {
      const i = tf.tensor([1, 2, 3, 4], [2, 2], 'int32');
      expect(tf.add(i, tf.scalar(3, 'int32')).dtype).toBe('int32');
      expect(Array.from(tf.mul(i, i).dataSync())).toEqual([1, 4, 9, 16]);
      expectSame('sub', tensor([3, 4], 1), tensor([3, 1], 2), '[3,4] - [3,1]');
      expectSame('mul', tensor([2, 1, 5], 3), tensor([4, 1], 4), '[2,1,5] * [4,1]');
      expectSame('add', tensor([0, 5], 5), tensor([5], 6), 'empty');
      expect(() => tf.add(tf.zeros([2, 3]), tf.zeros([4]))).toThrow(/broadcast|shapes/i);
    });
  });

  it.skipIf(!hasBinary)('check ranges and arguments in C++', () => {
    const a = load.addon!;
    const f = (n: number) => new Float32Array(n);
    // [op, outer, inner, aMode, bMode, aOff, bOff, yOff]
    expect(() => a.binary(f(12), f(4), f(12), Int32Array.of(0, 3, 4, 0, 1, 0, 0, 0))).not.toThrow();
    expect(() => a.binary(f(11), f(4), f(12), Int32Array.of(0, 3, 4, 0, 1, 0, 0, 0))).toThrow(/a.*outside/);
    expect(() => a.binary(f(12), f(3), f(12), Int32Array.of(0, 3, 4, 0, 1, 0, 0, 0))).toThrow(/b.*outside/);
    expect(() => a.binary(f(12), f(1), f(12), Int32Array.of(0, 3, 4, 0, 2, 0, 1, 0))).toThrow(/b.*outside/);
    expect(() => a.binary(f(12), f(4), f(12), Int32Array.of(0, 3, 4, 0, 1, 0, 0, 1))).toThrow(/y.*outside/);
    expect(() => a.binary(f(12), f(4), f(12), Int32Array.of(4, 3, 4, 0, 1, 0, 0, 0))).toThrow(/operation/);
    expect(() => a.binary(f(12), f(4), f(12), Int32Array.of(0, 3, 4, 3, 1, 0, 0, 0))).toThrow(/mode/);
    expect(() => a.binary(f(12), f(4), f(12), Int32Array.of(0, -3, 4, 0, 1, 0, 0, 0))).toThrow(/negative/);
    expect(() => a.binary(f(12), f(4), f(12), Int32Array.of(0, 2 ** 30, 2 ** 30, 0, 1, 0, 0, 0))).toThrow(/outside/);
  });

  // 3 threads on a 2-core machine: workers preempted mid-claim, waking late into the next call
  it.skipIf(!hasBinary).each([2, 3])('keep the thread pool exact under thousands of calls of every size (%i threads)', (threads) => {
    const a = load.addon!;
    a.setThreads(threads);
    try {
      const n = 1 << 18;
      const x = values(n + 7, 21, false);
      const y = values(n, 22, false);
      const out = new Float32Array(n + 3);
      const row = 1000;
      let bad = 0;
      for (let it = 0; it < 3000; it++) {
        // sizes on both sides of the threaded path's threshold; a row operand every third call
        const m = 1 + ((it * 7919) % n);
        const useRow = it % 3 === 0 && m >= row;
        const outer = useRow ? Math.floor(m / row) : 1;
        const inner = useRow ? row : m;
        out.fill(0);
        a.binary(x, y, out, Int32Array.of(2, outer, inner, 0, useRow ? 1 : 0, 7, 0, 3));
        const size = outer * inner;
        for (let i = 0; i < size; i += 211) if (out[3 + i] !== Math.fround(x[7 + i]! * y[useRow ? i % row : i]!)) bad++;
        if (out[3 + size - 1] !== Math.fround(x[7 + size - 1]! * y[useRow ? (size - 1) % row : size - 1]!)) bad++;
        if (3 + size < out.length && out[3 + size] !== 0) bad++;
      }
      expect(bad).toBe(0);
    } finally {
      a.setThreads((load as { threads: number }).threads);
    }
  });
});

describe.skipIf(!built || !wasmOk)('native elementwise kernels on wasm', () => {
  it('are bit-identical to the wasm kernels and the cpu ones, above and below the size threshold', async () => {
    const cases: [number[], number[]][] = [
      [[2, 64, 64, 256], [256]],
      [[8, 5, 196, 196], [5, 196, 196]],
      [[WASM_MIN_SIZE], [WASM_MIN_SIZE]],
      [[WASM_MIN_SIZE - 1], []],
      [[3, 7], [7]],
      [[64, 300], [64, 1]],
    ];
    const reference = cases.map(([sa, sb]) => OPS.map((op) => tf.tidy(() => without(() => apply(op, tensor(sa, 31, false), tensor(sb, 32, false))).dataSync() as Float32Array)));
    await onBackend('wasm', () => {
      registerNativeKernels('wasm');
      cases.forEach(([sa, sb], k) =>
        tf.tidy(() => {
          const a = tensor(sa, 31, false);
          const b = tensor(sb, 32, false);
          OPS.forEach((op, o) => {
            const got = apply(op, a, b).dataSync() as Float32Array;
            const want = without(() => apply(op, a, b)).dataSync() as Float32Array;
            expectSameBits([got, got], [want, reference[k]![o]!], `wasm ${op} ${sa} ${sb}`, ['vs wasm', 'vs cpu']);
          });
        }),
      );
    });
  });
});
