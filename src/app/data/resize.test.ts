import { describe, expect, it } from 'vitest';
import { resizeBilinear } from './resize.js';

describe('resizeBilinear (antialiased, PIL-style)', () => {
  it('is the identity at the same size and keeps constants constant', () => {
    const src = new Float32Array([1, 2, 3, 4, 5, 6]);
    expect(Array.from(resizeBilinear(src, 3, 2, 1, 3, 2))).toEqual([1, 2, 3, 4, 5, 6]);
    const flat = new Uint8Array(13 * 7 * 3).fill(200);
    for (const [w, h] of [[5, 3], [26, 14], [1, 1], [40, 2]]) {
      for (const v of resizeBilinear(flat, 13, 7, 3, w!, h!)) expect(v).toBeCloseTo(200, 3);
    }
  });

  it('upscaling is bilinear on half-pixel centres (clamped at the edges)', () => {
    const out = resizeBilinear(new Float32Array([0, 10]), 2, 1, 1, 4, 1);
    expect(Array.from(out).map((v) => +v.toFixed(4))).toEqual([0, 2.5, 7.5, 10]);
  });

  it('downscaling by 2 uses the widened triangle filter (weights 1,3,3,1 / 8)', () => {
    const src = new Float32Array([0, 0, 8, 8, 16, 16, 24, 24]);
    const out = resizeBilinear(src, 8, 1, 1, 4, 1);
    // output 1 covers source 1..4: (0*1 + 8*3 + 8*3 + 16*1) / 8 = 8
    expect(out[1]).toBeCloseTo(8, 5);
    // edge: output 0 taps source 0..2 with weights 3,3,1 (the 4th tap falls outside)
    expect(out[0]).toBeCloseTo((0 * 3 + 0 * 3 + 8 * 1) / 7, 5);
  });

  it('downscaled binary masks become coverage fractions in [0, 1]', () => {
    const n = 64;
    const src = new Float32Array(n * n);
    for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) src[y * n + x] = x < 21 ? 1 : 0;
    const out = resizeBilinear(src, n, n, 1, 16, 16);
    for (const v of out) {
      expect(v).toBeGreaterThanOrEqual(0);
      expect(v).toBeLessThanOrEqual(1 + 1e-6);
    }
    expect(out[0]).toBeCloseTo(1, 5);
    expect(out[15]).toBeCloseTo(0, 5);
    const mean = out.reduce((a, b) => a + b, 0) / out.length;
    expect(mean).toBeCloseTo(21 / 64, 1);
  });
});
