// The shared save (shared-save.ts): gradients, first and second order, and
// memory are those of the engine's own clone; the data is shared, not copied.
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { valueAndGradsLowMemory } from './backprop.js';
import { installSharedSave, uninstallSharedSave } from './shared-save.js';

const loss = (x: tf.Tensor, w: tf.Tensor) => tf.sum<tf.Scalar>(tf.square(tf.tanh(tf.matMul(tf.mul(x, w), w, false, true))));

function withEngineClone<T>(f: () => T): T {
  uninstallSharedSave();
  try {
    return f();
  } finally {
    installSharedSave();
  }
}

describe('shared save of tensors for the backward pass', () => {
  installSharedSave();
  afterAll(() => installSharedSave());

  it('gives the engine-clone gradients, through tf.grads and the low-memory backward pass', () => {
    tf.tidy(() => {
      const x = tf.randomUniform([5, 4], -1, 1, 'float32', 1);
      const w = tf.randomUniform([5, 4], -1, 1, 'float32', 2);
      const want = withEngineClone(() => tf.grads(loss)([x, w]));
      const got = tf.grads(loss)([x, w]);
      const low = valueAndGradsLowMemory(() => loss(x, w), [x, w]).grads;
      got.forEach((g, i) => expect(Array.from(g.dataSync())).toEqual(Array.from(want[i]!.dataSync())));
      low.forEach((g, i) => expect(Array.from(g!.dataSync())).toEqual(Array.from(want[i]!.dataSync())));
    });
  });

  it('keeps higher-order gradients right (nested recording uses the engine clone)', () => {
    tf.tidy(() => {
      const x = tf.tensor1d([0.5, -1.5, 2]);
      // d/dx of d/dx (x^3 * sin x)
      const f = (a: tf.Tensor) => tf.mul(tf.mul(tf.mul(a, a), a), tf.sin(a));
      const second = tf.grad((a: tf.Tensor) => tf.sum(tf.grad(f)(a)))(x);
      const want = withEngineClone(() => tf.grad((a: tf.Tensor) => tf.sum(tf.grad(f)(a)))(x));
      const xs = [0.5, -1.5, 2];
      const exact = xs.map((v) => 6 * v * Math.sin(v) + 6 * v * v * Math.cos(v) - v ** 3 * Math.sin(v));
      const g = second.dataSync();
      expect(Array.from(g)).toEqual(Array.from(want.dataSync()));
      exact.forEach((e, i) => expect(g[i]).toBeCloseTo(e, 4));
    });
  });

  it('shares the data (no new buffer) and leaves no tensors or buffers behind', () => {
    const x = tf.variable(tf.randomUniform([64, 64], -1, 1, 'float32', 3));
    const step = () => {
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(x, x)));
      value.dispose();
      tf.dispose(grads);
    };
    step();
    const before = tf.memory();
    let buffersDuring = 0;
    const { value, grads } = tf.variableGrads(() => {
      const y = tf.sum<tf.Scalar>(tf.mul(x, x)); // Multiply saves x twice: two more tensors, no new buffer
      buffersDuring = (tf.memory() as { numDataBuffers: number }).numDataBuffers;
      return y;
    });
    value.dispose();
    tf.dispose(grads);
    // the product and the sum: two buffers; the saved x's share x's
    expect(buffersDuring - (before as { numDataBuffers: number }).numDataBuffers).toBe(2);
    for (let i = 0; i < 3; i++) step();
    expect(tf.memory().numTensors).toBe(before.numTensors);
    expect((tf.memory() as { numDataBuffers: number }).numDataBuffers).toBe((before as { numDataBuffers: number }).numDataBuffers);
    x.dispose();
  });
});
