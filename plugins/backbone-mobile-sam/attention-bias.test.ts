// TinyViT's logits bias: a frozen table's gathered bias is kept until the
// table's values change; a trainable table's is gathered every time, so its
// gradient reaches the table.
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { TinyVitAttention } from './attention.js';

function withTable(trainable: boolean): TinyVitAttention {
  const attn = new TinyVitAttention(8, 2, 3);
  const p = attn.param('attention_biases');
  p.variable.assign(tf.randomNormal(p.shape, 0, 1, 'float32', 5));
  p.trainable = trainable;
  return attn;
}

describe('TinyViT attention bias', () => {
  it('a frozen table: gathered once, gathered again after its values change', () => {
    const attn = withTable(false);
    const first = attn.bias();
    const before = tf.memory().numTensors;
    expect(attn.bias()).toBe(first);
    expect(tf.memory().numTensors).toBe(before);
    const values = Array.from(first.dataSync());
    const table = attn.param('attention_biases').variable;
    table.assign(tf.add(table, 1));
    const second = attn.bias();
    expect(second).not.toBe(first);
    expect(first.isDisposed).toBe(true);
    expect(Array.from(second.dataSync())).toEqual(values.map((v) => Math.fround(v + 1)));
    attn.dispose();
    expect(second.isDisposed).toBe(true);
  });

  it('a trainable table: its gradient flows through the bias', () => {
    const attn = withTable(true);
    expect(attn.bias()).not.toBe(attn.bias());
    const table = attn.param('attention_biases').variable;
    const x = tf.randomNormal([2, 9, 8], 0, 1, 'float32', 3) as tf.Tensor3D;
    const { grads } = tf.variableGrads(() => tf.sum(tf.square(attn.forward(x))) as tf.Scalar, [table]);
    const g = grads[table.name]!;
    expect(g.shape).toEqual(table.shape);
    expect(tf.max(tf.abs(g)).dataSync()[0]).toBeGreaterThan(0);
    attn.dispose();
  });
});
