// The packed-qkv attention kernels (PeftAttention and its gradient) against
// the composite form they replace (core packedAttention with the native
// kernels off, differentiated by autodiff): property tests over random batch,
// head, head-size and grid sizes, with and without the rel-pos bias and the
// logits bias, both qkv layouts, both scale placements, on cpu and on wasm; the
// composite backward used when the kernels are turned off mid-step; the
// threaded split; the C++ range checks.
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ensureWasmBackend, onBackend } from '../../../test/support/kernels.js';
import { packedAttention, type PackedAttentionOptions } from '../../core/nn/packed-attention.js';
import { PEFT_ATTENTION, PEFT_ATTENTION_GRAD } from './fused-names.js';
import { fusedKernelActive, registerNativeKernels, setNativeKernelsEnabled } from './index.js';
import { RUNS, built, close, expectSameBits, load, rand, whyNotBuilt, without } from '../../../test/support/native.js';

if (!built) console.log(`native attention tests skipped: ${whyNotBuilt}`);
const wasmOk = await ensureWasmBackend();

const attnCase = fc.record({
  nb: fc.integer({ min: 1, max: 3 }),
  heads: fc.integer({ min: 1, max: 3 }),
  hd: fc.integer({ min: 1, max: 11 }),
  qh: fc.integer({ min: 1, max: 5 }),
  qw: fc.integer({ min: 1, max: 5 }),
  rel: fc.boolean(),
  onQuery: fc.boolean(),
  perHead: fc.boolean(),
  bias: fc.boolean(),
  seed: fc.integer({ min: 0, max: 1e6 }),
});
type AttnCase = typeof attnCase extends fc.Arbitrary<infer T> ? T : never;

/** The value and the gradients (qkv, then rh and rw with the rel-pos bias, then the logits bias) of sum(attention * dy). */
function attentionCase(c: AttnCase): tf.Tensor[] {
  const n = c.qh * c.qw;
  const ch = c.heads * c.hd;
  const qkv = rand([c.nb, n, 3 * ch], c.seed, 2);
  const rh = rand([c.qh, c.qh, c.hd], c.seed + 1);
  const rw = rand([c.qw, c.qw, c.hd], c.seed + 2);
  const bias = rand([c.heads, n, n], c.seed + 4, 1.5);
  const dy = rand([c.nb, n, ch], c.seed + 3);
  const options = (h?: tf.Tensor, w?: tf.Tensor, b?: tf.Tensor): PackedAttentionOptions => ({
    heads: c.heads,
    scale: c.hd ** -0.5,
    scaleOn: c.onQuery ? 'query' : 'logits',
    layout: c.perHead ? 'per-head' : 'qkv-major',
    ...(h && w ? { relPos: { rh: h, rw: w, grid: [c.qh, c.qw] as [number, number] } } : {}),
    ...(b ? { bias: b } : {}),
  });
  const inputs = [qkv, ...(c.rel ? [rh, rw] : []), ...(c.bias ? [bias] : [])];
  const attend = (xs: tf.Tensor[]) => {
    const [x, ...rest] = xs;
    const [h, w] = c.rel ? rest : [];
    return packedAttention(x!, options(h, w, c.bias ? rest[rest.length - 1] : undefined));
  };
  const f = (...xs: tf.Tensor[]) => tf.sum(tf.mul(attend(xs), dy));
  return [attend(inputs), ...tf.grads(f)(inputs)];
}

function compare(c: AttnCase, got: tf.Tensor[], want: tf.Tensor[], label: string): void {
  expect(got.length).toBe(want.length);
  const n = c.qh * c.qw;
  // sums over N keys (and over nb x heads x tokens for the tables, over nb for the bias) in another order
  const scales = [4 * n, 8 * n, ...(c.rel ? [8 * n * c.nb * c.heads, 8 * n * c.nb * c.heads] : []), 8 * n * c.nb];
  got.forEach((g, i) => close(g, want[i]!, scales[i], `${label} ${JSON.stringify(c)} output ${i}`));
}

describe.skipIf(!built)('native packed attention on the cpu backend', () => {
  it('is registered with the other native kernels', () => {
    expect(fusedKernelActive(PEFT_ATTENTION)).toBe(true);
    expect(fusedKernelActive(PEFT_ATTENTION_GRAD)).toBe(true);
  });

  it('value and gradients equal the composite form (random sizes and layouts, with and without rel-pos and logits bias)', () => {
    fc.assert(
      fc.property(attnCase, (c) => {
        tf.tidy(() => compare(c, attentionCase(c), without(() => attentionCase(c)), 'cpu'));
      }),
      { numRuns: RUNS * 2 },
    );
  });

  it('equals the composite form at SAM sizes, split over two threads', () => {
    load.addon!.setThreads(2);
    onTestFinished(() => load.addon!.setThreads((load as { threads: number }).threads));
    tf.tidy(() => {
      // w1's windowed blocks: 8 windows of 8x8 tokens, 3 heads of 64
      const c: AttnCase = { nb: 8, heads: 3, hd: 64, qh: 8, qw: 8, rel: true, onQuery: true, perHead: false, bias: false, seed: 5 };
      const got = attentionCase(c);
      compare(c, got, without(() => attentionCase(c)), 'threaded');
      load.addon!.setThreads(1);
      compare(c, got, attentionCase(c), '1 vs 2 threads');
    });
  });

  it('equals the composite form at TinyViT sizes (per-head qkv, logits bias), split over two threads', () => {
    load.addon!.setThreads(2);
    onTestFinished(() => load.addon!.setThreads((load as { threads: number }).threads));
    tf.tidy(() => {
      // MobileSAM's stage 3 in w2: 14x14 windows, 5 heads of 32
      const c: AttnCase = { nb: 3, heads: 5, hd: 32, qh: 14, qw: 14, rel: false, onQuery: false, perHead: true, bias: true, seed: 6 };
      const got = attentionCase(c);
      compare(c, got, without(() => attentionCase(c)), 'threaded');
      load.addon!.setThreads(1);
      compare(c, got, attentionCase(c), '1 vs 2 threads');
    });
  });

  it('falls back to the composite gradient when the kernels are turned off after the forward pass', () => {
    for (const [rel, withBias] of [
      [true, false],
      [false, false],
      [false, true],
      [true, true],
    ]) {
      tf.tidy(() => {
        const c: AttnCase = { nb: 2, heads: 2, hd: 5, qh: 3, qw: 4, rel, onQuery: rel, perHead: withBias, bias: withBias, seed: 9 };
        const n = c.qh * c.qw;
        const qkv = rand([c.nb, n, 3 * c.hd * c.heads], 1, 2);
        const rh = rand([3, 3, 5], 2);
        const rw = rand([4, 4, 5], 3);
        const bias = rand([2, n, n], 5);
        const dy = rand([c.nb, n, c.heads * c.hd], 4);
        const options = (h: tf.Tensor, w: tf.Tensor, b: tf.Tensor): PackedAttentionOptions => ({
          heads: 2,
          scale: 0.4,
          scaleOn: rel ? 'query' : 'logits',
          layout: withBias ? 'per-head' : 'qkv-major',
          ...(rel ? { relPos: { rh: h, rw: w, grid: [3, 4] as [number, number] } } : {}),
          ...(withBias ? { bias: b } : {}),
        });
        const inputs = [qkv, ...(rel ? [rh, rw] : []), ...(withBias ? [bias] : [])];
        const loss = (offMidway: boolean) => (x: tf.Tensor, ...rest: tf.Tensor[]) => {
          const [h, w] = rel ? rest : [rh, rw];
          const y = packedAttention(x, options(h!, w!, withBias ? rest[rest.length - 1]! : bias));
          if (offMidway) setNativeKernelsEnabled(false);
          return tf.sum(tf.mul(y, dy));
        };
        let got: tf.Tensor[];
        try {
          got = tf.grads(loss(true))(inputs);
        } finally {
          setNativeKernelsEnabled(true);
        }
        const want = without(() => tf.grads(loss(false))(inputs));
        compare(c, got, want, 'turned off mid-step');
      });
    }
  });

  it('keeps no softmax when no tape records it (inference): the same values to the bit, without the [nb, heads, N, N] tensor', async () => {
    const [nb, heads, hd, g] = [3, 4, 8, 6];
    const n = g * g;
    const qkv = rand([nb, n, 3 * heads * hd], 5, 2);
    const rh = rand([g, g, hd], 6);
    const rw = rand([g, g, hd], 7);
    const bias = rand([heads, n, n], 8);
    const o: PackedAttentionOptions = { heads, scale: hd ** -0.5, relPos: { rh, rw, grid: [g, g] }, bias };
    let taped: tf.Tensor | undefined;
    tf.dispose(
      tf.grads((x: tf.Tensor) => {
        taped = tf.keep(packedAttention(x, o));
        return tf.sum(taped);
      })([qkv]),
    );
    const probsBytes = nb * heads * n * n * 4;
    const inference = await tf.profile(() => {
      const y = packedAttention(qkv, o);
      expectSameBits([y.dataSync() as Float32Array], [taped!.dataSync() as Float32Array], 'untaped forward');
      y.dispose();
    });
    const outBytes = nb * n * heads * hd * 4;
    expect(inference.peakBytes - tf.memory().numBytes).toBeLessThan(outBytes + 1024);
    expect(inference.peakBytes - tf.memory().numBytes).toBeLessThan(probsBytes);
    tf.dispose([qkv, rh, rw, bias, taped!]);
  });

  it('leaves no tensors behind', () => {
    const c: AttnCase = { nb: 2, heads: 2, hd: 4, qh: 2, qw: 3, rel: true, onQuery: true, perHead: true, bias: true, seed: 1 };
    const step = () => tf.tidy(() => attentionCase(c).forEach((t) => t.dataSync()));
    step();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) step();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rejects bad shapes in TypeScript and ranges outside the arrays in C++', () => {
    const qkv = tf.zeros([1, 6, 12]);
    const run = (inputs: tf.NamedTensorMap, attrs: object) => tf.engine().runKernel(PEFT_ATTENTION, inputs, attrs as tf.NamedAttrMap);
    expect(() => run({ qkv }, { heads: 5, scale: 1, scaleOnQuery: true, grid: [0, 0] })).toThrow(/not 3 x heads/);
    expect(() => run({ qkv, rh: tf.zeros([2, 2, 2]), rw: tf.zeros([3, 3, 2]) }, { heads: 2, scale: 1, scaleOnQuery: true, grid: [3, 2] })).toThrow(
      /do not fit the grid/,
    );
    expect(() => run({ qkv, rh: tf.zeros([2, 2, 2]) }, { heads: 2, scale: 1, scaleOnQuery: true, grid: [2, 3] })).toThrow(/come together/);
    expect(() => run({ qkv, bias: tf.zeros([2, 6, 5]) }, { heads: 2, scale: 1, scaleOnQuery: true, grid: [0, 0] })).toThrow(/logits bias/);
    tf.dispose(qkv);
    const a = load.addon!;
    const f = (n: number) => new Float32Array(n);
    // nb 1, n 4, heads 1, hd 2: qkv 24 (ld 6: q, k, v at 0, 2, 4), out 8, probs 16, bias 16
    const shape = (grid = [0, 0, 0, 0], columns = [6, 0, 2, 4, 2]) => [1, 4, 1, 2, ...grid, 1, ...columns];
    const p = (...offsets: number[]) => Int32Array.from([...shape(), ...offsets]);
    expect(() => a.attention(f(24), null, null, null, f(8), f(16), p(0, 0, 0, 0, 0, 0), 1)).not.toThrow();
    expect(() => a.attention(f(24), null, null, f(16), f(8), f(16), p(0, 0, 0, 0, 0, 0), 1)).not.toThrow();
    expect(() => a.attention(f(23), null, null, null, f(8), f(16), p(0, 0, 0, 0, 0, 0), 1)).toThrow(/qkv.*outside/);
    expect(() => a.attention(f(24), null, null, null, f(8), f(16), p(0, 0, 0, 0, 0, 1), 1)).toThrow(/probs.*outside/);
    expect(() => a.attention(f(24), null, null, f(15), f(8), f(16), p(0, 0, 0, 0, 0, 0), 1)).toThrow(/bias.*outside/);
    const withGrid = (grid: number[], columns?: number[]) => Int32Array.from([...shape(grid, columns), 0, 0, 0, 0, 0, 0]);
    expect(() => a.attention(f(24), f(8), null, null, f(8), f(16), withGrid([2, 2, 2, 2]), 1)).toThrow(/together/);
    expect(() => a.attention(f(24), f(8), f(8), null, f(8), f(16), withGrid([2, 3, 2, 2]), 1)).toThrow(/do not cover/);
    // q, k, v overlapping, or past the row
    expect(() => a.attention(f(24), null, null, null, f(8), f(16), withGrid([0, 0, 0, 0], [6, 0, 1, 4, 2]), 1)).toThrow(/overlap/);
    expect(() => a.attention(f(24), null, null, null, f(8), f(16), withGrid([0, 0, 0, 0], [6, 0, 2, 5, 2]), 1)).toThrow(/outside rows/);
    // a row wider than q, k, v: accepted (and the rest of dqkv is zero, below)
    expect(() => a.attention(f(32), null, null, null, f(8), f(16), withGrid([0, 0, 0, 0], [8, 1, 3, 5, 2]), 1)).not.toThrow();
    const gp = (...offsets: number[]) => Int32Array.from([...shape(), ...offsets]);
    expect(() => a.attentionGrad(f(8), f(24), f(16), null, null, f(23), null, null, null, gp(0, 0, 0, 0, 0, 0, 0, 0, 0), 1)).toThrow(/dqkv.*outside/);
    expect(() => a.attentionGrad(f(8), f(24), f(16), null, null, f(24), null, null, f(15), gp(0, 0, 0, 0, 0, 0, 0, 0, 0), 1)).toThrow(/dbias.*outside/);
    expect(() => a.attention(f(24), null, null, null, f(8), f(16), Int32Array.of(1, 4, 1, 2), 1)).toThrow(/wrong length/);
  });

  it('writes the q, k, v columns of dqkv from the layout and zeroes the others', () => {
    const a = load.addon!;
    // nb 1, n 3, heads 2, hd 1, rows of 8: head h's q, k, v at 1 + 3h, 2 + 3h, 3 + 3h; columns 0 and 7 unused
    const qkv = Float32Array.from({ length: 24 }, (_, i) => Math.sin(i + 1));
    const out = new Float32Array(6);
    const probs = new Float32Array(18);
    const params = Int32Array.of(1, 3, 2, 1, 0, 0, 0, 0, 0, 8, 1, 2, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    a.attention(qkv, null, null, null, out, probs, params.subarray(0, 20), 0.7);
    const dqkv = new Float32Array(24).fill(Number.NaN);
    a.attentionGrad(Float32Array.from({ length: 6 }, (_, i) => i - 2), qkv, probs, null, null, dqkv, null, null, null, params, 0.7);
    for (let t = 0; t < 3; t++) {
      expect(dqkv[t * 8]).toBe(0);
      expect(dqkv[t * 8 + 7]).toBe(0);
      for (let j = 1; j < 7; j++) expect(Number.isFinite(dqkv[t * 8 + j]!)).toBe(true);
    }
    // the same numbers as the dense per-head layout without the unused columns
    const dense = Float32Array.from({ length: 18 }, (_, i) => qkv[Math.floor(i / 6) * 8 + 1 + (i % 6)]!);
    const dOut = new Float32Array(6);
    const dProbs = new Float32Array(18);
    const dParams = Int32Array.of(1, 3, 2, 1, 0, 0, 0, 0, 0, 6, 0, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    a.attention(dense, null, null, null, dOut, dProbs, dParams.subarray(0, 20), 0.7);
    expect(Array.from(out)).toEqual(Array.from(dOut));
    const dDense = new Float32Array(18);
    a.attentionGrad(Float32Array.from({ length: 6 }, (_, i) => i - 2), dense, dProbs, null, null, dDense, null, null, null, dParams, 0.7);
    for (let i = 0; i < 18; i++) expect(dqkv[Math.floor(i / 6) * 8 + 1 + (i % 6)]).toBe(dDense[i]);
  });
});

describe.skipIf(!built || !wasmOk)('native packed attention on the wasm backend (in place on the wasm heap)', () => {
  it('value and gradients equal the composite form on wasm and the cpu reference', async () => {
    const cases = fc.sample(attnCase, RUNS);
    const reference = cases.map((c) => tf.tidy(() => without(() => attentionCase(c)).map((t) => ({ shape: t.shape, data: t.dataSync().slice() }))));
    await onBackend('wasm', () => {
      registerNativeKernels('wasm');
      expect(fusedKernelActive(PEFT_ATTENTION)).toBe(true);
      cases.forEach((c, i) =>
        tf.tidy(() => {
          const got = attentionCase(c);
          compare(c, got, without(() => attentionCase(c)), 'wasm');
          compare(c, got, reference[i]!.map((r) => tf.tensor(r.data, r.shape)), 'wasm vs cpu');
        }),
      );
    });
  });
});
