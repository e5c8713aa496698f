import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import type { Sample } from '../data/dataset.js';
import { Rng } from '../data/random.js';
import { buildPrompts, disposePrompts, maskBox, sampleBox, sampleClick, samplePrompt, toImageCoord } from './prompts.js';

function sample(outSize: number, size: number, fill: (x: number, y: number) => [number, number]): Sample {
  const target = new Float32Array(outSize * outSize * 2);
  for (let y = 0; y < outSize; y++) for (let x = 0; x < outSize; x++) {
    const [cup, disc] = fill(x, y);
    target[(y * outSize + x) * 2] = cup;
    target[(y * outSize + x) * 2 + 1] = disc;
  }
  return { name: 's', image: new Float32Array(size * size * 3), target, size, outSize, channels: 2 };
}

// disc: soft ring, full agreement in a 6x4 block; cup: a smaller block
const s = sample(16, 64, (x, y) => {
  const disc = x >= 4 && x < 10 && y >= 5 && y < 9 ? 1 : x >= 3 && x < 11 && y >= 4 && y < 10 ? 3 / 7 : 0;
  const cup = x >= 6 && x < 8 && y >= 6 && y < 8 ? 1 : 0;
  return [cup, disc];
});
const plane = (c: number) => Float32Array.from({ length: 256 }, (_, i) => s.target[i * 2 + c]!);

describe('prompts', () => {
  it('a click lands where all raters agree, in image pixels, seeded', () => {
    for (let seed = 0; seed < 50; seed++) {
      const p = samplePrompt(s, 'click', new Rng(seed), { channel: 1 });
      const { x, y, label } = p.point!;
      expect(label).toBe(1);
      expect(x >= 0 && x < 64 && y >= 0 && y < 64).toBe(true);
      const tx = Math.floor((x + 0.5) / 4);
      const ty = Math.floor((y + 0.5) / 4);
      expect(plane(1)[ty * 16 + tx]).toBe(1);
    }
    expect(samplePrompt(s, 'click', new Rng(3))).toEqual(samplePrompt(s, 'click', new Rng(3)));
    expect(toImageCoord(0, 64, 16)).toBe(1.5);
    expect(toImageCoord(15, 64, 16)).toBe(61.5);
  });

  it('without full agreement the click takes the max-agreement pixels; empty → negative click', () => {
    const soft = Float32Array.from({ length: 16 }, (_, i) => (i === 5 || i === 6 ? 0.6 : i === 9 ? 0.3 : 0));
    for (let seed = 0; seed < 20; seed++) {
      const c = sampleClick(soft, 4, new Rng(seed));
      expect([5, 6]).toContain(c.y * 4 + c.x);
      expect(c.label).toBe(1);
    }
    const none = sampleClick(new Float32Array(16), 4, new Rng(1));
    expect(none.label).toBe(0);
    expect(none.x >= 0 && none.x < 4 && none.y >= 0 && none.y < 4).toBe(true);
  });

  it('a box covers the binarised mask exactly without jitter, stays in the image with it', () => {
    expect(maskBox(plane(1), 16)).toEqual([4, 5, 9, 8]); // 3/7 < 0.5 is outside
    expect(sampleBox(plane(1), 16, 64, new Rng(0), 0)).toEqual([16, 20, 39, 35]);
    for (let seed = 0; seed < 50; seed++) {
      const [x0, y0, x1, y1] = sampleBox(plane(1), 16, 64, new Rng(seed), 0.5);
      for (const v of [x0, y0, x1, y1]) expect(v >= 0 && v <= 63).toBe(true);
      expect(x0 <= x1 && y0 <= y1).toBe(true);
    }
    // a mask at the border, large jitter: clamped
    const edge = Float32Array.from({ length: 16 }, (_, i) => (i % 4 === 0 ? 1 : 0));
    for (let seed = 0; seed < 20; seed++) {
      const b = sampleBox(edge, 4, 16, new Rng(seed), 1);
      expect(Math.min(...b)).toBeGreaterThanOrEqual(0);
      expect(Math.max(...b)).toBeLessThanOrEqual(15);
    }
    expect(sampleBox(new Float32Array(16), 4, 16, new Rng(0))).toEqual([0, 0, 15, 15]);
  });

  it('builds Prompts tensors [B,1,2]+[B,1] or [B,4], or none', () => {
    const before = tf.memory().numTensors;
    const clicks = buildPrompts([s, s, s], 'click', new Rng(1));
    expect(clicks.points!.coords.shape).toEqual([3, 1, 2]);
    expect(clicks.points!.labels.shape).toEqual([3, 1]);
    expect(Array.from(clicks.points!.labels.dataSync())).toEqual([1, 1, 1]);
    const boxes = buildPrompts([s, s], 'box', new Rng(1), { channel: 1, boxJitter: 0 });
    expect(boxes.boxes!.shape).toEqual([2, 4]);
    expect(Array.from(boxes.boxes!.dataSync().subarray(0, 4))).toEqual([16, 20, 39, 35]);
    expect(buildPrompts([s], 'none', new Rng(1))).toEqual({});
    disposePrompts(clicks);
    disposePrompts(boxes);
    expect(tf.memory().numTensors).toBe(before);
    expect(() => samplePrompt(s, 'click', new Rng(0), { channel: 2 })).toThrow(/prompt channel 2 out of range/);
  });
});
