import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { geluErf, layerNorm, linear, matMul } from '../../core/nn/functional.js';
import { valueAndGradsLowMemory } from './backprop.js';
import { onBackend } from '../../../test/support/kernels.js';

interface Net {
  params: tf.Variable[];
  x: tf.Tensor;
  forward(probe?: () => void): tf.Scalar;
  dispose(): void;
}

/** A small residual MLP stack: a frozen stem, then blocks whose params are the differentiated ones. */
function makeNet(seed: number, depth: number, width: number, tokens: number, shuffle = true): Net {
  const v = (shape: number[], s: number, trainable = true) => tf.variable(tf.randomUniform(shape, -0.5, 0.5, 'float32', seed + s), trainable);
  const stem = v([width, width], 1, false);
  const head = v([width, width], 2, false);
  const blocks = Array.from({ length: depth }, (_, i) => ({
    w1: v([2 * width, width], 10 + i),
    b1: v([2 * width], 20 + i),
    w2: v([width, 2 * width], 30 + i),
    g: v([width], 40 + i),
  }));
  const x = tf.randomUniform([2, tokens, width], -1, 1, 'float32', seed);
  const up = tf.randomUniform([2, tokens, width], -1, 1, 'float32', seed + 99);
  return {
    params: blocks.flatMap((b) => [b.w1, b.b1, b.w2, b.g]),
    x,
    forward(probe) {
      return tf.tidy(() => {
        // frozen stem: nothing here needs a gradient
        let h = geluErf(linear(geluErf(linear(x, stem)), stem));
        for (const b of blocks) {
          const n = layerNorm(h, b.g, undefined, 1e-5);
          const a = matMul(n, n, false, true); // token mixing [2, T, T]
          const mixed = matMul(tf.softmax(a), n);
          h = tf.add(h, linear(geluErf(linear(mixed, b.w1, b.b1)), b.w2));
          if (shuffle) {
            const [p, q] = tf.split(h, 2, 2);
            h = tf.concat([q!, tf.mul(p!, 0.5)], 2);
          }
        }
        // a frozen head after the adapted blocks: its input needs a gradient, its weight does not
        h = linear(h, head);
        probe?.();
        return tf.sum(tf.mul(h, up)) as tf.Scalar;
      });
    },
    dispose() {
      tf.dispose([stem, head, ...blocks.flatMap((b) => [b.w1, b.b1, b.w2, b.g]), x, up]);
    },
  };
}

describe('valueAndGradsLowMemory', () => {
  for (const backend of ['cpu', 'wasm']) {
    it(`gives the engine's value and gradients bit for bit, and leaves no tensor behind (${backend})`, async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.record({ seed: fc.integer({ min: 1, max: 1e5 }), depth: fc.integer({ min: 1, max: 3 }), width: fc.constantFrom(4, 6, 8), tokens: fc.integer({ min: 1, max: 5 }) }),
          async (c) =>
            onBackend(backend, () => {
              const net = makeNet(c.seed, c.depth, c.width, c.tokens);
              const xs = [...net.params, net.x];
              const before = tf.memory().numTensors;
              const ref = tf.engine().gradients(() => net.forward(), xs);
              const low = valueAndGradsLowMemory(() => net.forward(), xs);
              expect(low.value.dataSync()[0]).toBe(ref.value.dataSync()[0]);
              low.grads.forEach((g, i) => expect(Array.from(g!.dataSync())).toEqual(Array.from(ref.grads[i]!.dataSync())));
              tf.dispose([ref.value, ...ref.grads, low.value, ...(low.grads as tf.Tensor[])]);
              expect(tf.memory().numTensors).toBe(before);
              net.dispose();
            }),
        ),
        { numRuns: 12, seed: 5 },
      );
    });
  }

  it('holds less memory: the frozen stem frees its saved tensors during the forward pass, the backward frees as it goes', async () => {
    await onBackend('cpu', () => {
      const net = makeNet(3, 3, 32, 64, false);
      const afterForward = [0, 0];
      const ref = tf.engine().gradients(() => net.forward(() => (afterForward[0] = tf.memory().numBytes)), net.params);
      tf.dispose([ref.value, ...ref.grads]);
      const low = valueAndGradsLowMemory(() => net.forward(() => (afterForward[1] = tf.memory().numBytes)), net.params);
      tf.dispose([low.value, ...(low.grads as tf.Tensor[])]);
      expect(afterForward[1]).toBeLessThan(afterForward[0]!);
      // bytes alive when the backward pass reaches the first block (near its end)
      const late = [0, 0];
      const w = net.params[0]!;
      const probe = (slot: number) =>
        tf.customGrad((...inputs: (tf.Tensor | tf.GradSaveFunc)[]) => ({
          value: tf.mul(inputs[0] as tf.Tensor, 1),
          gradFunc: (dy: tf.Tensor) => {
            late[slot] = tf.memory().numBytes;
            return dy;
          },
        }));
      const loss = (slot: number) => () =>
        tf.tidy(() => {
          const p = probe(slot)(w) as tf.Tensor;
          return tf.add(net.forward(), tf.sum(p)) as tf.Scalar;
        });
      const r1 = tf.engine().gradients(loss(0), net.params);
      tf.dispose([r1.value, ...r1.grads]);
      const r2 = valueAndGradsLowMemory(loss(1), net.params);
      tf.dispose([r2.value, ...(r2.grads as tf.Tensor[])]);
      expect(late[1]).toBeGreaterThan(0);
      expect(late[1]).toBeLessThan(0.6 * late[0]!);
      net.dispose();
    });
  });

  it('a tensor the loss does not depend on gets undefined; nested use falls back to the engine', async () => {
    await onBackend('cpu', () => {
      const a = tf.variable(tf.scalar(2));
      const unused = tf.variable(tf.scalar(5));
      const r = valueAndGradsLowMemory(() => tf.square(a) as tf.Scalar, [a, unused]);
      expect(r.value.dataSync()[0]).toBe(4);
      expect(r.grads[0]!.dataSync()[0]).toBe(4);
      expect(r.grads[1]).toBeUndefined();
      // inside another gradient computation (higher order): the engine's path
      const outer = tf.grad((x: tf.Tensor) => {
        const inner = valueAndGradsLowMemory(() => tf.sum(tf.mul(x, x)) as tf.Scalar, [x]);
        return tf.sum(inner.grads[0]!);
      })(tf.scalar(3));
      expect(outer.dataSync()[0]).toBe(2);
      tf.dispose([a, unused, r.value, ...(r.grads.filter(Boolean) as tf.Tensor[]), outer]);
    });
  });
});
