// packedAttention's gradients on the native kernels, as a PEFT step asks for
// them: qkv computed from a trainable variable, the rel-pos tables and the
// logits bias computed from variables that are frozen or trainable. The
// gradients equal the composite form's (autodiff), and the backward kernel
// makes the tables' and the bias's gradients only when they are on the path
// (one call, its outputs those predicted); a gradient asked for but not
// predicted is still made (another call). The value and gradients against the
// composite form over random sizes and layouts: src/accel/native/attention.test.ts.
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RUNS, built, close, rand, whyNotBuilt, without } from '../../../test/support/native.js';
import { PEFT_ATTENTION_GRAD } from '../../accel/native/fused-names.js';
import { packedAttention } from './packed-attention.js';

if (!built) console.log(`packedAttention gradient-path tests skipped: ${whyNotBuilt}`);

const pathCase = fc.record({
  nb: fc.integer({ min: 1, max: 2 }),
  heads: fc.integer({ min: 1, max: 3 }),
  hd: fc.integer({ min: 1, max: 6 }),
  qh: fc.integer({ min: 1, max: 4 }),
  qw: fc.integer({ min: 1, max: 4 }),
  rel: fc.boolean(),
  bias: fc.boolean(),
  tablesTrainable: fc.boolean(),
  biasTrainable: fc.boolean(),
  seed: fc.integer({ min: 0, max: 1e6 }),
});
type PathCase = typeof pathCase extends fc.Arbitrary<infer T> ? T : never;

/** The step's variables: w (qkv = x w, trainable), the tables' and the bias's sources (each trainable or frozen). */
function variables(c: PathCase) {
  const n = c.qh * c.qw;
  const ch = c.heads * c.hd;
  return {
    x: rand([c.nb * n, 5], c.seed),
    dy: rand([c.nb, n, ch], c.seed + 1),
    w: tf.variable(rand([5, 3 * ch], c.seed + 2), true),
    rh: tf.variable(rand([c.qh, c.qh, c.hd], c.seed + 3), c.tablesTrainable),
    rw: tf.variable(rand([c.qw, c.qw, c.hd], c.seed + 4), c.tablesTrainable),
    bias: tf.variable(rand([c.heads, n, n], c.seed + 5), c.biasTrainable),
  };
}

/** The loss's gradients for the trainable variables (tf.variableGrads), as the trainer asks. */
function step(c: PathCase, v: ReturnType<typeof variables>): Record<string, tf.Tensor> {
  const n = c.qh * c.qw;
  const loss = () =>
    tf.tidy(() => {
      const qkv = tf.reshape(tf.matMul(v.x, v.w), [c.nb, n, -1]);
      // the tables and the bias are computed from their variables, as SAM's get_rel_pos and TinyViT's gather
      const y = packedAttention(qkv, {
        heads: c.heads,
        scale: c.hd ** -0.5,
        ...(c.rel ? { relPos: { rh: tf.mul(v.rh, 1.5), rw: tf.mul(v.rw, 1.5), grid: [c.qh, c.qw] as [number, number] } } : {}),
        ...(c.bias ? { bias: tf.mul(v.bias, 2) } : {}),
      });
      return tf.sum(tf.mul(y, v.dy)) as tf.Scalar;
    });
  const { value, grads } = tf.variableGrads(loss);
  value.dispose();
  return grads;
}

describe.skipIf(!built)('packedAttention: gradients on the path only', () => {
  it('equal the composite form, with one backward call making only the gradients on the path', async () => {
    const cases = fc.sample(pathCase, { numRuns: RUNS, seed: 7 });
    for (const c of cases) {
      const v = variables(c);
      try {
        const want = without(() => step(c, v));
        let got: Record<string, tf.Tensor> = {};
        const profile = await tf.profile(() => {
          got = step(c, v);
          return Object.values(got);
        });
        expect(Object.keys(got).sort(), JSON.stringify(c)).toEqual(Object.keys(want).sort());
        const n = c.qh * c.qw;
        for (const k of Object.keys(want)) close(got[k]!, want[k]!, 16 * n * c.nb * c.heads, `${JSON.stringify(c)} ${k}`);
        const calls = profile.kernels.filter((k) => k.name === PEFT_ATTENTION_GRAD);
        expect(calls.length, JSON.stringify(c)).toBe(1);
        // dqkv, then drh and drw when the tables train, then dbias when the bias trains
        const outputs = 1 + (c.rel && c.tablesTrainable ? 2 : 0) + (c.bias && c.biasTrainable ? 1 : 0);
        expect(calls[0]!.outputShapes.length, JSON.stringify(c)).toBe(outputs);
        tf.dispose([...Object.values(got), ...Object.values(want)]);
      } finally {
        tf.dispose([v.x, v.dy, v.w, v.rh, v.rw, v.bias]);
      }
    }
  });

  it('makes a gradient asked for but not predicted (a plain tensor differentiated), with another call', async () => {
    const c: PathCase = { nb: 2, heads: 2, hd: 3, qh: 2, qw: 3, rel: true, bias: true, tablesTrainable: false, biasTrainable: false, seed: 3 };
    const n = c.qh * c.qw;
    const qkv = rand([c.nb, n, 3 * c.heads * c.hd], 1);
    const bias = rand([c.heads, n, n], 2);
    const rh = rand([c.qh, c.qh, c.hd], 3);
    const rw = rand([c.qw, c.qw, c.hd], 4);
    const dy = rand([c.nb, n, c.heads * c.hd], 5);
    const f = (b: tf.Tensor) => tf.sum(tf.mul(packedAttention(qkv, { heads: c.heads, scale: 0.5, relPos: { rh, rw, grid: [c.qh, c.qw] }, bias: b }), dy));
    const want = without(() => tf.grad(f)(bias));
    let got: tf.Tensor | undefined;
    const profile = await tf.profile(() => (got = tf.grad(f)(bias)));
    close(got!, want, 16 * n * c.nb, 'the bias gradient, not predicted');
    // the predicted call (dqkv, made but not used: qkv is not on the path) and the bias's own
    expect(profile.kernels.filter((k) => k.name === PEFT_ATTENTION_GRAD).length).toBe(2);
    tf.dispose([qkv, bias, rh, rw, dy, got!, want]);
  });

  it('leaves no tensors behind', () => {
    const c: PathCase = { nb: 1, heads: 2, hd: 2, qh: 2, qw: 2, rel: true, bias: true, tablesTrainable: false, biasTrainable: true, seed: 1 };
    const v = variables(c);
    tf.dispose(Object.values(step(c, v))); // warm-up (kernel registration, caches)
    const before = tf.memory().numTensors;
    tf.dispose(Object.values(step(c, v)));
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([v.x, v.dy, v.w, v.rh, v.rw, v.bias]);
  });
});
