import { describe, expect, it } from 'vitest';
import { augmentSample, augmentSchema, colourJitter, drawAugment, warp, type AugmentParams } from './augment.js';
import { Rng } from './random.js';

const identity: AugmentParams = { flip: false, angle: 0, scale: 1, tx: 0, ty: 0, brightness: 1, contrast: 1, saturation: 1 };

describe('Rng', () => {
  it('is deterministic, derives independent streams, and has sane moments', () => {
    const a = new Rng(5);
    const b = new Rng(5);
    const xs = Array.from({ length: 5 }, () => a.next());
    expect(Array.from({ length: 5 }, () => b.next())).toEqual(xs);
    expect(new Rng(6).next()).not.toBe(xs[0]);
    const d1 = a.derive('x', 1).next();
    a.next();
    expect(a.derive('x', 1).next()).toBe(d1); // derive ignores draws made so far
    expect(a.derive('x', 2).next()).not.toBe(d1);
    const r = new Rng('moments');
    let s = 0, s2 = 0;
    for (let i = 0; i < 20000; i++) { const v = r.normal(); s += v; s2 += v * v; }
    expect(Math.abs(s / 20000)).toBeLessThan(0.05);
    expect(Math.abs(s2 / 20000 - 1)).toBeLessThan(0.05);
    for (let i = 0; i < 1000; i++) { const k = r.int(7); expect(k >= 0 && k < 7 && Number.isInteger(k)).toBe(true); }
    expect(r.shuffle([1, 2, 3, 4, 5]).sort()).toEqual([1, 2, 3, 4, 5]);
  });
});

describe('augmentation', () => {
  it('identity parameters change nothing', () => {
    const img = new Float32Array(4 * 4 * 3).map((_, i) => i);
    const tgt = new Float32Array(2 * 2 * 2).map((_, i) => i / 8);
    const out = augmentSample(img, 4, tgt, 2, 2, identity);
    expect(Array.from(out.image)).toEqual(Array.from(img));
    expect(Array.from(out.target)).toEqual(Array.from(tgt));
  });

  it('a flip mirrors image and target the same way', () => {
    const n = 6;
    const img = new Float32Array(n * n * 3);
    const tgt = new Float32Array(3 * 3);
    for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) img[(y * n + x) * 3] = x;
    for (let y = 0; y < 3; y++) for (let x = 0; x < 3; x++) tgt[y * 3 + x] = x === 0 ? 1 : 0;
    const out = augmentSample(img, n, tgt, 3, 1, { ...identity, flip: true });
    for (let x = 0; x < n; x++) expect(out.image[x * 3]).toBeCloseTo(n - 1 - x, 5);
    expect(Array.from(out.target.subarray(0, 3)).map((v) => +v.toFixed(5))).toEqual([0, 0, 1]);
  });

  it('a 90 degree rotation moves a corner blob to the next corner, same in both arrays', () => {
    const n = 8;
    const m = new Float32Array(n * n);
    m[1 * n + 1] = 1; // top-left blob
    const rotated = warp(m, n, 1, { ...identity, angle: Math.PI / 2 });
    let best = 0, at = -1;
    rotated.forEach((v, i) => { if (v > best) { best = v; at = i; } });
    expect(best).toBeCloseTo(1, 4);
    // y axis points down: +90 deg maps (x,y) offsets (-,-) to (+,-): top-right
    expect([at % n, Math.floor(at / n)]).toEqual([n - 2, 1]);
  });

  it('draws are seeded; colour jitter stays in 0..255; targets stay in [0, 1]', () => {
    const opts = augmentSchema.parse({});
    const p1 = drawAugment(new Rng(3), opts);
    expect(drawAugment(new Rng(3), opts)).toEqual(p1);
    expect(drawAugment(new Rng(4), opts)).not.toEqual(p1);
    const img = new Float32Array(16 * 16 * 3).map((_, i) => (i * 37) % 256);
    const tgt = new Float32Array(8 * 8).map((_, i) => (i % 3) / 2);
    for (let s = 0; s < 20; s++) {
      const p = drawAugment(new Rng(s), augmentSchema.parse({ rotate: 30, brightness: 0.5, contrast: 0.5, saturation: 0.5 }));
      const out = augmentSample(img, 16, tgt, 8, 1, p);
      for (const v of out.image) expect(v >= 0 && v <= 255).toBe(true);
      for (const v of out.target) expect(v >= 0 && v <= 1 + 1e-6).toBe(true);
    }
    const grey = colourJitter(new Float32Array([100, 100, 100]), { ...identity, saturation: 2 });
    expect(Array.from(grey).map((v) => Math.round(v))).toEqual([100, 100, 100]);
  });
});
