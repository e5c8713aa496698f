// The packed-qkv attention kernels (PeftAttention and its gradient) against
// the composite form they replace (core packedAttention with the native
// kernels off, differentiated by autodiff): property tests over random batch,
// head, head-size and grid sizes, with and without the rel-pos bias, both
// scale placements, on cpu and on wasm; the composite backward used when the
// kernels are turned off mid-step; the threaded split; the C++ range checks.
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ensureWasmBackend, onBackend } from '../../../test/support/kernels.js';
import { packedAttention, type PackedAttentionOptions } from '../../core/nn/packed-attention.js';
import { PEFT_ATTENTION, PEFT_ATTENTION_GRAD } from './fused-names.js';
import { fusedKernelActive, registerNativeKernels, setNativeKernelsEnabled } from './index.js';
import { RUNS, built, close, load, rand, whyNotBuilt, without } from '../../../test/support/native.js';

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
  seed: fc.integer({ min: 0, max: 1e6 }),
});
type AttnCase = typeof attnCase extends fc.Arbitrary<infer T> ? T : never;

/** The value and the gradients (qkv, then rh and rw with the bias) of sum(attention * dy). */
function attentionCase(c: AttnCase): tf.Tensor[] {
  const n = c.qh * c.qw;
  const ch = c.heads * c.hd;
  const qkv = rand([c.nb, n, 3 * ch], c.seed, 2);
  const rh = rand([c.qh, c.qh, c.hd], c.seed + 1);
  const rw = rand([c.qw, c.qw, c.hd], c.seed + 2);
  const dy = rand([c.nb, n, ch], c.seed + 3);
  const options = (h?: tf.Tensor, w?: tf.Tensor): PackedAttentionOptions => ({
    heads: c.heads,
    scale: c.hd ** -0.5,
    scaleOn: c.onQuery ? 'query' : 'logits',
    ...(h && w ? { relPos: { rh: h, rw: w, grid: [c.qh, c.qw] as [number, number] } } : {}),
  });
  if (c.rel) {
    const f = (x: tf.Tensor, h: tf.Tensor, w: tf.Tensor) => tf.sum(tf.mul(packedAttention(x, options(h, w)), dy));
    return [packedAttention(qkv, options(rh, rw)), ...tf.grads(f)([qkv, rh, rw])];
  }
  const f = (x: tf.Tensor) => tf.sum(tf.mul(packedAttention(x, options()), dy));
  return [packedAttention(qkv, options()), ...tf.grads(f)([qkv])];
}

function compare(c: AttnCase, got: tf.Tensor[], want: tf.Tensor[], label: string): void {
  expect(got.length).toBe(want.length);
  const n = c.qh * c.qw;
  // sums over N keys (and over nb x heads x tokens for the tables) in another order
  const scales = [4 * n, 8 * n, 8 * n * c.nb * c.heads, 8 * n * c.nb * c.heads];
  got.forEach((g, i) => close(g, want[i]!, scales[i], `${label} ${JSON.stringify(c)} output ${i}`));
}

describe.skipIf(!built)('native packed attention on the cpu backend', () => {
  it('is registered with the other native kernels', () => {
    expect(fusedKernelActive(PEFT_ATTENTION)).toBe(true);
    expect(fusedKernelActive(PEFT_ATTENTION_GRAD)).toBe(true);
  });

  it('value and gradients equal the composite form (random sizes, with and without rel-pos)', () => {
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
      const c: AttnCase = { nb: 8, heads: 3, hd: 64, qh: 8, qw: 8, rel: true, onQuery: true, seed: 5 };
      const got = attentionCase(c);
      compare(c, got, without(() => attentionCase(c)), 'threaded');
      load.addon!.setThreads(1);
      compare(c, got, attentionCase(c), '1 vs 2 threads');
    });
  });

  it('falls back to the composite gradient when the kernels are turned off after the forward pass', () => {
    for (const rel of [true, false]) {
      tf.tidy(() => {
        const c: AttnCase = { nb: 2, heads: 2, hd: 5, qh: 3, qw: 4, rel, onQuery: rel, seed: 9 };
        const n = c.qh * c.qw;
        const qkv = rand([c.nb, n, 3 * c.hd * c.heads], 1, 2);
        const rh = rand([3, 3, 5], 2);
        const rw = rand([4, 4, 5], 3);
        const dy = rand([c.nb, n, c.heads * c.hd], 4);
        const options = (h: tf.Tensor, w: tf.Tensor): PackedAttentionOptions => ({
          heads: 2,
          scale: 0.4,
          scaleOn: rel ? 'query' : 'logits',
          ...(rel ? { relPos: { rh: h, rw: w, grid: [3, 4] as [number, number] } } : {}),
        });
        const inputs = rel ? [qkv, rh, rw] : [qkv];
        const loss = (offMidway: boolean) => (x: tf.Tensor, h?: tf.Tensor, w?: tf.Tensor) => {
          const y = packedAttention(x, options(h ?? rh, w ?? rw));
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

  it('leaves no tensors behind', () => {
    const c: AttnCase = { nb: 2, heads: 2, hd: 4, qh: 2, qw: 3, rel: true, onQuery: true, seed: 1 };
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
    tf.dispose(qkv);
    const a = load.addon!;
    const f = (n: number) => new Float32Array(n);
    // nb 1, n 4, heads 1, hd 2: qkv 24, out 8, probs 16
    const p = (...offsets: number[]) => Int32Array.of(1, 4, 1, 2, 0, 0, 0, 0, 1, ...offsets);
    expect(() => a.attention(f(24), null, null, f(8), f(16), p(0, 0, 0, 0, 0), 1)).not.toThrow();
    expect(() => a.attention(f(23), null, null, f(8), f(16), p(0, 0, 0, 0, 0), 1)).toThrow(/qkv.*outside/);
    expect(() => a.attention(f(24), null, null, f(8), f(16), p(0, 0, 0, 0, 1), 1)).toThrow(/probs.*outside/);
    expect(() => a.attention(f(24), f(8), null, f(8), f(16), Int32Array.of(1, 4, 1, 2, 2, 2, 2, 2, 1, 0, 0, 0, 0, 0), 1)).toThrow(/together/);
    expect(() => a.attention(f(24), f(8), f(8), f(8), f(16), Int32Array.of(1, 4, 1, 2, 2, 3, 2, 2, 1, 0, 0, 0, 0, 0), 1)).toThrow(/do not cover/);
    expect(() => a.attentionGrad(f(8), f(24), f(16), null, null, f(23), null, null, p(0, 0, 0, 0, 0, 0, 0, 0), 1)).toThrow(/dqkv.*outside/);
    expect(() => a.attention(f(24), null, null, f(8), f(16), Int32Array.of(1, 4, 1, 2), 1)).toThrow(/wrong length/);
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
