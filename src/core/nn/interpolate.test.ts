import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs';
import { interpolationMatrix, resizeFirstAxis, resizeGrid } from './interpolate.js';

describe('interpolation (PyTorch align_corners=False)', () => {
  it('linear: known values of F.interpolate([0,1,2], size=5)', () => {
    // torch: F.interpolate(torch.arange(3.).view(1,1,3), size=5, mode='linear') = [0, 0.4, 1, 1.6, 2]
    const m = interpolationMatrix(3, 5, 'linear');
    const y = [0, 1, 2, 3, 4].map((o) => m[o * 3 + 1]! * 1 + m[o * 3 + 2]! * 2);
    expect(y.map((v) => +v.toFixed(6))).toEqual([0, 0.4, 1, 1.6, 2]);
  });

  it('is mirror-symmetric: resizing a reversed input gives the reversed output', () => {
    // (exact values are checked against PyTorch by the encoder fixtures, which resize position embeddings)
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 40 }), fc.constantFrom('linear' as const, 'bicubic' as const), (n, m, mode) => {
        const w = interpolationMatrix(n, m, mode);
        for (let o = 0; o < m; o++) for (let i = 0; i < n; i++) expect(w[o * n + i]).toBeCloseTo(w[(m - 1 - o) * n + (n - 1 - i)]!, 5);
      }),
      { numRuns: 60 },
    );
  });

  it('rows of every interpolation matrix sum to 1, and equal sizes are the identity', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 40 }), fc.constantFrom('linear' as const, 'bicubic' as const), (n, m, mode) => {
        const w = interpolationMatrix(n, m, mode);
        for (let o = 0; o < m; o++) {
          let s = 0;
          for (let i = 0; i < n; i++) s += w[o * n + i]!;
          expect(s).toBeCloseTo(1, 5);
        }
        if (n === m) for (let o = 0; o < m; o++) expect(w[o * n + o]).toBeCloseTo(1, 6);
      }),
      { numRuns: 100 },
    );
  });

  it('resizes tables and grids with the expected shapes', () => {
    const t = resizeFirstAxis(tf.ones([7, 3]), 11, 'linear');
    expect(t.shape).toEqual([11, 3]);
    const g = resizeGrid(tf.ones([4, 4, 2]) as tf.Tensor3D, 6, 3, 'bicubic');
    expect(g.shape).toEqual([6, 3, 2]);
    expect(Math.abs(tf.max(tf.abs(tf.sub(g, 1))).dataSync()[0]!)).toBeLessThan(1e-6);
  });
});
