// SVDLinear on the native low-rank kernel (core lowRankLinear with E as its
// rank scale, the scale as one factor) against its own composite arithmetic (the kernels off):
// value and the gradients of x, A, E and B, on ranks, widths and scalings
// drawn at random; and a pruned layer (rank 0) is its base.
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RUNS, built, close, whyNotBuilt, without } from '../../test/support/native.js';
import { registerNativeKernels } from '../../src/accel/native/index.js';
import { Parameter, lowRankLinearIsNative } from '../../src/index.js';
import { SVDLinear } from './layer.js';

if (!built) console.log(`native SVDLinear tests skipped: ${whyNotBuilt}`);

function layerOf(inF: number, out: number, r: number, alpha: number, seed: number): SVDLinear {
  const weight = new Parameter(tf.randomNormal([out, inF], 0, 0.2, 'float32', seed), { trainable: false });
  const bias = new Parameter(tf.randomNormal([out], 0, 0.2, 'float32', seed + 1), { trainable: false });
  const layer = new SVDLinear({ weight, bias }, { r, alpha });
  // E non-zero (it starts at zero), so every gradient is exercised
  layer.registerParameter('lora_E', tf.randomNormal([r, 1], 0, 0.5, 'float32', seed + 2));
  return layer;
}

function valueAndGrads(layer: SVDLinear, x: tf.Tensor2D): tf.Tensor[] {
  const vars = ['lora_A', 'lora_E', 'lora_B'].map((n) => layer.param(n).variable);
  const f = (xx: tf.Tensor) => tf.sum(tf.square(layer.forward(xx))) as tf.Scalar;
  const { value, grads } = tf.variableGrads(() => f(x), vars);
  const dx = tf.grad(f)(x);
  return [value, ...vars.map((v) => grads[v.name]!), dx];
}

describe.skipIf(!built)('SVDLinear on the native low-rank kernel', () => {
  it('equals its composite form: value and the gradients of x, A, E, B', () => {
    registerNativeKernels('cpu');
    expect(lowRankLinearIsNative()).toBe(true);
    expect(without(() => lowRankLinearIsNative())).toBe(false);
    fc.assert(
      fc.property(
        fc.record({ n: fc.integer({ min: 1, max: 40 }), inF: fc.integer({ min: 1, max: 48 }), out: fc.integer({ min: 1, max: 48 }), r: fc.integer({ min: 1, max: 6 }), alpha: fc.constantFrom(0, 1, 32), seed: fc.nat(1000) }),
        (c) => {
          const layer = layerOf(c.inF, c.out, c.r, c.alpha, c.seed);
          const x = tf.randomNormal([c.n, c.inF], 0, 1, 'float32', c.seed + 3) as tf.Tensor2D;
          const got = valueAndGrads(layer, x);
          const want = without(() => valueAndGrads(layer, x));
          // the low-rank path's sums (over N and out for A and B) are in another order than the
          // composite's and come out multiplied by alpha / r: their rounding with them
          const lowRank = 2 * (1 + c.alpha / c.r);
          const scales = [1, lowRank, lowRank, lowRank, 1];
          ['value', 'A', 'E', 'B', 'x'].forEach((name, i) => close(got[i]!, want[i]!, scales[i], `${name} (${JSON.stringify(c)})`));
          tf.dispose([...got, ...want, x]);
          layer.dispose();
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('a layer pruned to rank 0 is its base layer', () => {
    registerNativeKernels('cpu');
    const layer = layerOf(8, 6, 2, 1, 7);
    layer.prune([false, false]);
    const x = tf.randomNormal([5, 8], 0, 1, 'float32', 9) as tf.Tensor2D;
    const base = tf.add(tf.matMul(x, layer.param('weight').variable, false, true), layer.param('bias').variable);
    expect(Array.from(layer.forward(x).dataSync())).toEqual(Array.from(base.dataSync()));
  });
});
