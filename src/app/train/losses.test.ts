import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { bceWithLogits, createLoss, diceBce, diceLoss } from './losses.js';

const softplus = (z: number) => Math.log1p(Math.exp(z));

describe('losses', () => {
  it('bceWithLogits matches the hand-computed PyTorch formula (pos_weight 2 by default)', () => {
    const xs = [0, 2, -3, 1];
    const ys = [0, 1, 0.5, 1];
    // (1 - y) x + (1 + (w - 1) y) log(1 + exp(-x)), mean
    const expected = (w: number) => xs.reduce((s, x, i) => s + (1 - ys[i]!) * x + (1 + (w - 1) * ys[i]!) * softplus(-x), 0) / xs.length;
    expect(expected(2)).toBeCloseTo(1.1616015, 6); // worked by hand: (0.693147 + 0.253856 + 3.072880 + 0.626523) / 4
    const x = tf.tensor4d(xs, [1, 2, 2, 1]);
    const y = tf.tensor4d(ys, [1, 2, 2, 1]);
    expect(bceWithLogits(x, y).dataSync()[0]).toBeCloseTo(expected(2), 5);
    expect(bceWithLogits(x, y, 1).dataSync()[0]).toBeCloseTo(expected(1), 5);
    tf.dispose([x, y]);
  });

  it('is stable for huge logits and has the analytic gradient', () => {
    const big = tf.tensor1d([100, -100, 80]);
    const tgt = tf.tensor1d([0, 1, 1]);
    const v = bceWithLogits(big, tgt).dataSync()[0]!;
    expect(v).toBeCloseTo((100 + 2 * 100 + 0) / 3, 3);
    const xs = [0.3, -1.2, 2.5];
    const ys = [1, 0, 0.3];
    const x = tf.tensor1d(xs);
    const y = tf.tensor1d(ys);
    const g = tf.grad((z: tf.Tensor) => bceWithLogits(z, y, 2))(x).dataSync();
    const sig = (z: number) => 1 / (1 + Math.exp(-z));
    xs.forEach((xi, i) => {
      const w = 1 + ys[i]!;
      expect(g[i]).toBeCloseTo(((1 - ys[i]!) - w * sig(-xi)) / xs.length, 5);
    });
    tf.dispose([big, tgt, x, y]);
  });

  it('diceLoss: hand-computed value, ~0 when perfect, ~1 when disjoint, finite gradients', () => {
    // one sample, 2 pixels, 1 channel: p = sigmoid([0, 0]) = 0.5, t = [1, 0]
    const l = tf.zeros([1, 1, 2, 1]);
    const t = tf.tensor4d([1, 0], [1, 1, 2, 1]);
    // 1 - (2*0.5 + 1e-5) / (1 + 1 + 1e-5)
    expect(diceLoss(l, t).dataSync()[0]).toBeCloseTo(1 - (1 + 1e-5) / (2 + 1e-5), 6);
    // squared: denominator 0.25 + 0.25 + 1
    expect(diceLoss(l, t, { squaredPred: true }).dataSync()[0]).toBeCloseTo(1 - (1 + 1e-5) / (1.5 + 1e-5), 6);
    const target = tf.tensor4d([1, 0, 0, 1, 1, 1, 0, 0], [2, 2, 1, 2]);
    const perfect = tf.sub(tf.mul(target, 40), 20);
    expect(diceLoss(perfect, target).dataSync()[0]).toBeLessThan(1e-6);
    const wrong = tf.neg(perfect);
    expect(diceLoss(wrong, target).dataSync()[0]).toBeGreaterThan(0.999);
    const g = tf.grad((z: tf.Tensor) => diceBce(z, target))(tf.zerosLike(target)).dataSync();
    for (const v of g) expect(Number.isFinite(v)).toBe(true);
    expect(diceBce(l, t).dataSync()[0]).toBeCloseTo(diceLoss(l, t).dataSync()[0]! + bceWithLogits(l, t, 1).dataSync()[0]!, 6);
    expect(createLoss('bce')(l as tf.Tensor4D, t as tf.Tensor4D).dataSync()[0]).toBeCloseTo(bceWithLogits(l, t, 2).dataSync()[0]!, 6);
    expect(() => createLoss('focal')).toThrow(/unknown loss 'focal'/);
    expect(() => bceWithLogits(l, target)).toThrow(/differ in shape/);
    tf.dispose([l, t, target, perfect, wrong]);
  });

  it('leaves no tensors behind', () => {
    const x = tf.randomNormal([2, 4, 4, 2]);
    const y = tf.randomUniform([2, 4, 4, 2]);
    const before = tf.memory().numTensors;
    for (const name of ['bce', 'dice', 'dice-bce']) createLoss(name)(x as tf.Tensor4D, y as tf.Tensor4D).dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, y]);
  });
});
