import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { onBackend } from '../../../test/support/kernels.js';
import { attention } from './attention.js';
import { packedAttention, packedAttentionComposite, type PackedAttentionOptions } from './packed-attention.js';

function values(shape: number[], seed: number): Float32Array {
  return tf.tidy(() => tf.randomUniform(shape, -1, 1, 'float32', seed).dataSync() as Float32Array);
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-4): void {
  expect(actual.length).toBe(expected.length);
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    scale = Math.max(scale, Math.abs(expected[i]!));
    worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  }
  expect(worst).toBeLessThanOrEqual(tol * (1 + scale));
}

describe('attention', () => {
  it('equals softmax(q k^T * scale + bias) v with its gradients, on cpu and wasm', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          lead: fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 2 }),
          nq: fc.integer({ min: 1, max: 7 }),
          nk: fc.integer({ min: 1, max: 7 }),
          d: fc.integer({ min: 1, max: 6 }),
          dv: fc.integer({ min: 1, max: 6 }),
          bias: fc.constantFrom('none', 'full', 'last-lead'),
          scaleOn: fc.constantFrom<'logits' | 'query'>('logits', 'query'),
          seed: fc.integer({ min: 1, max: 1e6 }),
        }),
        async (c) => {
          const qs = [...c.lead, c.nq, c.d];
          const ks = [...c.lead, c.nk, c.d];
          const vs = [...c.lead, c.nk, c.dv];
          // a bias for every leading axis, or shared over all but the last (heads)
          const bs = c.bias === 'full' ? [...c.lead, c.nq, c.nk] : [c.lead[c.lead.length - 1]!, c.nq, c.nk];
          const [q, k, v, b] = [values(qs, c.seed), values(ks, c.seed + 1), values(vs, c.seed + 2), values(bs, c.seed + 3)];
          const scale = 1 / Math.sqrt(c.d);
          const run = (f: (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, b?: tf.Tensor) => tf.Tensor) =>
            tf.tidy(() => {
              const inputs = [tf.tensor(q, qs), tf.tensor(k, ks), tf.tensor(v, vs), tf.tensor(b, bs)];
              const bias = c.bias === 'none' ? undefined : inputs[3];
              const y = f(inputs[0]!, inputs[1]!, inputs[2]!, bias);
              const up = tf.randomUniform(y.shape, -1, 1, 'float32', c.seed + 4);
              const xs = bias ? inputs : inputs.slice(0, 3);
              const { grads } = tf.engine().gradients(() => tf.sum(tf.mul(f(inputs[0]!, inputs[1]!, inputs[2]!, bias), up)), xs);
              return [y, ...grads].map((t) => t!.dataSync() as Float32Array);
            });
          const plain = (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, b?: tf.Tensor) => {
            let logits = tf.mul(tf.matMul(q, k, false, true), scale);
            if (b) logits = tf.add(logits, b);
            return tf.matMul(tf.softmax(logits), v);
          };
          const fast = (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, b?: tf.Tensor) => attention(q, k, v, { scale, bias: b, scaleOn: c.scaleOn });
          const expected = await onBackend('cpu', () => run(plain));
          for (const backend of ['cpu', 'wasm']) {
            const got = await onBackend(backend, () => run(fast));
            got.forEach((g, i) => expectClose(g, expected[i]!));
          }
        },
      ),
      { numRuns: 30, seed: 11 },
    );
  });
});

describe('packedAttention', () => {
  // The reference of the native kernel tests (src/accel/native/attention.test.ts):
  // the composite form against plain per-head attention on q, k, v sliced out of qkv.
  it('composite form: both qkv layouts and the logits bias, with its gradient, on cpu and wasm', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          nb: fc.integer({ min: 1, max: 3 }),
          heads: fc.integer({ min: 1, max: 3 }),
          hd: fc.integer({ min: 1, max: 5 }),
          n: fc.integer({ min: 1, max: 7 }),
          perHead: fc.boolean(),
          bias: fc.boolean(),
          scaleOn: fc.constantFrom<'logits' | 'query'>('logits', 'query'),
          seed: fc.integer({ min: 1, max: 1e6 }),
        }),
        async (c) => {
          const c3 = 3 * c.heads * c.hd;
          const qs = [c.nb, c.n, c3];
          const bs = [c.heads, c.n, c.n];
          const [x, b, up] = [values(qs, c.seed), values(bs, c.seed + 1), values([c.nb, c.n, c.heads * c.hd], c.seed + 2)];
          const scale = 1 / Math.sqrt(c.hd);
          const run = (f: (qkv: tf.Tensor, bias?: tf.Tensor) => tf.Tensor) =>
            tf.tidy(() => {
              const inputs = [tf.tensor(x, qs), tf.tensor(b, bs)];
              const xs = c.bias ? inputs : inputs.slice(0, 1);
              const loss = () => tf.sum(tf.mul(f(inputs[0]!, c.bias ? inputs[1] : undefined), tf.tensor(up, [c.nb, c.n, c.heads * c.hd])));
              const { grads } = tf.engine().gradients(loss, xs);
              return [f(inputs[0]!, c.bias ? inputs[1] : undefined), ...grads].map((t) => t!.dataSync() as Float32Array);
            });
          // plain: q, k, v of head h are sliced at the columns the layout puts them
          const plain = (qkv: tf.Tensor, bias?: tf.Tensor) => {
            const column = (which: number, h: number) => (c.perHead ? (3 * h + which) * c.hd : (which * c.heads + h) * c.hd);
            const heads = Array.from({ length: c.heads }, (_, h) => {
              const [q, k, v] = [0, 1, 2].map((w) => tf.slice(qkv, [0, 0, column(w, h)], [c.nb, c.n, c.hd]));
              const hb = bias ? tf.slice(bias, [h, 0, 0], [1, c.n, c.n]) : undefined;
              return attention(q!, k!, v!, { scale, scaleOn: c.scaleOn, ...(hb ? { bias: hb } : {}) });
            });
            return tf.concat(heads, 2);
          };
          const options = (bias?: tf.Tensor): PackedAttentionOptions => ({
            heads: c.heads,
            scale,
            scaleOn: c.scaleOn,
            layout: c.perHead ? 'per-head' : 'qkv-major',
            ...(bias ? { bias } : {}),
          });
          const expected = await onBackend('cpu', () => run(plain));
          for (const backend of ['cpu', 'wasm']) {
            const composite = await onBackend(backend, () => run((qkv, bias) => packedAttentionComposite(qkv, options(bias))));
            composite.forEach((g, i) => expectClose(g, expected[i]!));
            // whichever form is active on the backend (the native kernel where registered)
            const active = await onBackend(backend, () => run((qkv, bias) => packedAttention(qkv, options(bias))));
            active.forEach((g, i) => expectClose(g, expected[i]!));
          }
        },
      ),
      { numRuns: 30, seed: 12 },
    );
  });
});
