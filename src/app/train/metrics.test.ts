import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { defaultThresholds, diceIouAt, imageScores, SegmentationMeter } from './metrics.js';

describe('metrics (Medical-SAM-Adapter eval_seg protocol)', () => {
  it('perfect prediction scores 1, disjoint scores 0, both empty scores 1', () => {
    const t = [1, 1, 0, 0, 0, 0, 0, 0];
    const [perfect] = imageScores(t, t, 1);
    expect(perfect).toEqual({ dice: 1, iou: 1, dice05: 1, iou05: 1 });
    const [disjoint] = imageScores([0, 0, 1, 1, 0, 0, 0, 0], t, 1);
    expect(disjoint!.dice).toBeLessThan(1e-4);
    expect(disjoint!.iou).toBeLessThan(1e-6);
    const [empty] = imageScores([0, 0, 0], [0, 0, 0], 1);
    expect(empty!.dice).toBe(1);
    expect(empty!.iou).toBe(1);
  });

  it('known partial overlap: 4 vs 4 pixels sharing 2', () => {
    const p = [1, 1, 1, 1, 0, 0, 0, 0];
    const t = [0, 0, 1, 1, 1, 1, 0, 0];
    const r = diceIouAt(p, t, 0.5);
    expect(r.dice).toBeCloseTo((2 * 2 + 1e-4) / (8 + 1e-4), 8);
    expect(r.iou).toBeCloseTo((2 + 1e-6) / (6 + 1e-6), 8);
  });

  it('soft targets are binarised at each threshold and averaged', () => {
    // target 0.6 on 2 pixels: present at 0.1, 0.3, 0.5; absent at 0.7, 0.9 (strict >)
    const t = [0.6, 0.6, 0, 0];
    const p = [0.95, 0.95, 0, 0];
    const [s] = imageScores(p, t, 1);
    // thresholds 0.7 and 0.9: prediction 2 px, target empty → dice 1e-4/(2+1e-4), iou 1e-6/(2+1e-6)
    expect(s!.dice).toBeCloseTo((3 + 2 * (1e-4 / (2 + 1e-4))) / 5, 6);
    expect(s!.iou).toBeCloseTo((3 + 2 * (1e-6 / (2 + 1e-6))) / 5, 6);
    expect(s!.dice05).toBeCloseTo(1, 6);
    expect(defaultThresholds).toEqual([0.1, 0.3, 0.5, 0.7, 0.9]);
  });

  it('per-class scores from channels-last arrays; the meter averages over images', async () => {
    // 2 images, 2x2 pixels, 2 classes (cup, disc), channels-last
    const target = new Float32Array([1, 1, 0, 1, 0, 0, 0, 0, /* image 2 */ 1, 1, 1, 1, 0, 1, 0, 0]);
    const logits = tf.tensor4d(Array.from(target).map((v, i) => (i < 8 ? (v ? 10 : -10) : i % 2 === 0 ? -10 : v ? 10 : -10)), [2, 2, 2, 2]);
    const meter = new SegmentationMeter(['cup', 'disc']);
    const targets = tf.tensor4d(target, [2, 2, 2, 2]);
    await meter.add(logits as tf.Tensor4D, targets as tf.Tensor4D);
    const r = meter.result();
    expect(r.count).toBe(2);
    expect(r.perClass.disc!.dice).toBeCloseTo(1, 6); // disc right in both images
    // cup: image 1 perfect (1), image 2 predicted empty vs 2 px → ~0
    expect(r.perClass.cup!.dice).toBeCloseTo(0.5, 4);
    expect(r.perClass.cup!.iou05).toBeCloseTo(0.5, 4);
    expect(r.mean.dice).toBeCloseTo(0.75, 4);
    tf.dispose([logits, targets]);
    expect(() => meter.addArrays([1, 2, 3], [1, 2], 1)).toThrow(/does not match/);
  });
});
