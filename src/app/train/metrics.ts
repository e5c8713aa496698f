// Segmentation metrics with Medical-SAM-Adapter's protocol (`eval_seg`): for
// each threshold in (0.1, 0.3, 0.5, 0.7, 0.9), binarise BOTH the prediction
// and the soft target (`> th`), compute per image and class
//   IoU  = (|P & T| + 1e-6) / (|P | T| + 1e-6)
//   Dice = (2 |P & T| + 1e-4) / (|P| + |T| + 1e-4)
// and average over the thresholds; also report the single threshold 0.5.
// Aggregation: the mean over images (every image counts once).
// Differences from the reference, on purpose: the prediction is thresholded
// as a PROBABILITY (sigmoid of the logits) — the reference compares raw logits
// with the thresholds; and the dataset mean is over images, where the
// reference averages per-batch means over batches (equal when batches are full).
import * as tf from '@tensorflow/tfjs';
import { PeftError } from '../../core/errors.js';

export const defaultThresholds: readonly number[] = [0.1, 0.3, 0.5, 0.7, 0.9];
const iouSmooth = 1e-6;
const diceSmooth = 1e-4;

export interface ClassScores {
  /** Dice averaged over the thresholds */
  dice: number;
  /** IoU averaged over the thresholds */
  iou: number;
  /** Dice at threshold 0.5 */
  dice05: number;
  /** IoU at threshold 0.5 */
  iou05: number;
}

/** Dice and IoU of one image plane at one threshold (strict `>`, both binarised). */
export function diceIouAt(prob: ArrayLike<number>, target: ArrayLike<number>, threshold: number, offset = 0, stride = 1, count = prob.length): { dice: number; iou: number } {
  let inter = 0;
  let sp = 0;
  let st = 0;
  for (let k = 0; k < count; k++) {
    const i = offset + k * stride;
    const p = prob[i]! > threshold ? 1 : 0;
    const t = target[i]! > threshold ? 1 : 0;
    inter += p & t;
    sp += p;
    st += t;
  }
  const union = sp + st - inter;
  return { dice: (2 * inter + diceSmooth) / (sp + st + diceSmooth), iou: (inter + iouSmooth) / (union + iouSmooth) };
}

/**
 * Scores per class of one image: `prob` and `target` are channels-last
 * `pixels * channels` arrays (probabilities, soft target).
 */
export function imageScores(prob: ArrayLike<number>, target: ArrayLike<number>, channels: number, thresholds: readonly number[] = defaultThresholds): ClassScores[] {
  if (prob.length !== target.length || prob.length % channels !== 0) {
    throw new PeftError(`metrics: prediction (${prob.length} values) and target (${target.length} values) do not match for ${channels} channels`);
  }
  if (thresholds.length === 0) throw new PeftError('metrics: no thresholds');
  const pixels = prob.length / channels;
  const out: ClassScores[] = [];
  for (let c = 0; c < channels; c++) {
    let dice = 0;
    let iou = 0;
    for (const th of thresholds) {
      const r = diceIouAt(prob, target, th, c, channels, pixels);
      dice += r.dice;
      iou += r.iou;
    }
    const half = diceIouAt(prob, target, 0.5, c, channels, pixels);
    out.push({ dice: dice / thresholds.length, iou: iou / thresholds.length, dice05: half.dice, iou05: half.iou });
  }
  return out;
}

export interface MetricsReport {
  /** Images seen. */
  count: number;
  thresholds: number[];
  perClass: Record<string, ClassScores>;
  /** Mean over classes of the per-class scores. */
  mean: ClassScores;
}

const zero = (): ClassScores => ({ dice: 0, iou: 0, dice05: 0, iou05: 0 });

/** Accumulates per-image scores over a dataset; `result()` gives the means over images. */
export class SegmentationMeter {
  private readonly sums: ClassScores[];
  private count = 0;

  constructor(
    readonly classes: string[],
    readonly thresholds: readonly number[] = defaultThresholds,
  ) {
    if (classes.length === 0) throw new PeftError('metrics: no classes');
    this.sums = classes.map(zero);
  }

  /** Adds a batch given as probabilities and targets, channels-last `[B, H, W, C]` flat arrays. */
  addArrays(prob: ArrayLike<number>, target: ArrayLike<number>, batch: number): void {
    const c = this.classes.length;
    if (prob.length !== target.length || prob.length % (batch * c) !== 0) {
      throw new PeftError(`metrics: batch of ${batch} with ${c} classes does not match ${prob.length} prediction and ${target.length} target values`);
    }
    const per = prob.length / batch;
    for (let b = 0; b < batch; b++) {
      const p = sliceOf(prob, b * per, per);
      const t = sliceOf(target, b * per, per);
      imageScores(p, t, c, this.thresholds).forEach((s, k) => {
        const acc = this.sums[k]!;
        acc.dice += s.dice;
        acc.iou += s.iou;
        acc.dice05 += s.dice05;
        acc.iou05 += s.iou05;
      });
      this.count++;
    }
  }

  /** Adds a batch of tensors `[B, H, W, C]`: logits (default) or probabilities. */
  async add(pred: tf.Tensor4D, targets: tf.Tensor4D, opts: { fromLogits?: boolean } = {}): Promise<void> {
    if (pred.shape.some((d, i) => d !== targets.shape[i])) {
      throw new PeftError(`metrics: prediction [${pred.shape.join(', ')}] and target [${targets.shape.join(', ')}] differ in shape`);
    }
    if (pred.shape[3] !== this.classes.length) throw new PeftError(`metrics: ${pred.shape[3]} channels, expected ${this.classes.length} (${this.classes.join(', ')})`);
    const prob = opts.fromLogits === false ? pred : tf.sigmoid(pred);
    try {
      const [p, t] = await Promise.all([prob.data() as Promise<Float32Array>, targets.data() as Promise<Float32Array>]);
      this.addArrays(p, t, pred.shape[0]);
    } finally {
      if (prob !== pred) prob.dispose();
    }
  }

  result(): MetricsReport {
    const n = Math.max(1, this.count);
    const perClass: Record<string, ClassScores> = {};
    const mean = zero();
    this.classes.forEach((name, k) => {
      const s = this.sums[k]!;
      const m = { dice: s.dice / n, iou: s.iou / n, dice05: s.dice05 / n, iou05: s.iou05 / n };
      perClass[name] = m;
      mean.dice += m.dice / this.classes.length;
      mean.iou += m.iou / this.classes.length;
      mean.dice05 += m.dice05 / this.classes.length;
      mean.iou05 += m.iou05 / this.classes.length;
    });
    return { count: this.count, thresholds: [...this.thresholds], perClass, mean };
  }
}

function sliceOf(a: ArrayLike<number>, start: number, len: number): ArrayLike<number> {
  if (a instanceof Float32Array || a instanceof Float64Array || a instanceof Uint8Array) return a.subarray(start, start + len);
  return Array.prototype.slice.call(a, start, start + len) as number[];
}
