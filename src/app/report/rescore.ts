// Re-scores a trained run image by image, exactly as `peft eval` scores it:
// the same normalised batch, the same forward (`predictLogits`, class c = the
// head's mask c), the sigmoid, and Dice per class averaged over the
// thresholds (`imageScores`). Eval averages these per-image scores over the
// split; the report keeps them per image to show and rank predictions.
// The prompts are eval's seeded prompts of a reference run, so every run sees
// the same prompt on the same image (see `evalPrompts`).
import * as tf from '@tensorflow/tfjs';
import type { Prompts } from '../../core/peft/backbone.js';
import type { PeftModel } from '../../core/peft/compose.js';
import type { Dataset, Sample } from '../data/dataset.js';
import { Rng } from '../data/random.js';
import { imageScores } from '../train/metrics.js';
import { disposePrompts, samplePrompt, type PromptMode, type SamplePrompt } from '../train/prompts.js';
import { makeBatch, predictLogits } from '../train/step.js';

/** One image's scores: Dice per class (averaged over eval's thresholds) and their mean. */
export interface ImageScore {
  /** Index in the validation split. */
  index: number;
  name: string;
  /** Mean over classes, as the results table's DICE. */
  dice: number;
  diceByClass: Record<string, number>;
}

/** A prompt in the input-image pixels of an image `size` pixels wide. */
export interface SizedPrompt {
  prompt: SamplePrompt;
  size: number;
}

/**
 * Eval's prompts for the images `indices` of `data`: eval draws the prompts of
 * the batch starting at `at` one after the other from `Rng(seed,
 * 'eval-prompt', at)`, so the prompt of image i depends on the seed, the batch
 * size and the images before it in its batch. Returns them by index.
 */
export async function evalPrompts(data: Dataset, indices: readonly number[], o: { mode: PromptMode; seed: number; batch: number }): Promise<Map<number, SizedPrompt>> {
  const out = new Map<number, SizedPrompt>();
  const byBatch = new Map<number, number>(); // batch start -> last index needed in it
  for (const i of indices) {
    const at = Math.floor(i / o.batch) * o.batch;
    byBatch.set(at, Math.max(byBatch.get(at) ?? -1, i));
  }
  for (const [at, last] of [...byBatch].sort((a, b) => a[0] - b[0])) {
    const rng = new Rng(o.seed, 'eval-prompt', at);
    for (let i = at; i <= last; i++) {
      const s = await data.get(i);
      out.set(i, { prompt: samplePrompt(s, o.mode, rng), size: s.size });
    }
  }
  return out;
}

/**
 * A prompt moved to an image `size` pixels wide: points keep their place on
 * the pixel grid (pixel centres map to pixel centres), box edges keep their
 * place on the image; unchanged when the sizes agree.
 */
export function scalePrompt(p: SizedPrompt, size: number): SamplePrompt {
  if (p.size === size) return p.prompt;
  const r = size / p.size;
  const clamp = (v: number) => Math.max(0, Math.min(size - 1, v));
  const centre = (v: number) => clamp((v + 0.5) * r - 0.5);
  const out: SamplePrompt = {};
  if (p.prompt.point) out.point = { x: centre(p.prompt.point.x), y: centre(p.prompt.point.y), label: p.prompt.point.label };
  if (p.prompt.box) {
    const [x0, y0, x1, y1] = p.prompt.box;
    out.box = [clamp(x0 * r), clamp(y0 * r), clamp((x1 + 1) * r - 1), clamp((y1 + 1) * r - 1)];
  }
  return out;
}

/** The tensors of a batch's prompts, packed as eval's `buildPrompts` packs them (one point, or one box, per image). */
function promptTensors(prompts: SamplePrompt[], mode: PromptMode): Prompts {
  const b = prompts.length;
  if (mode === 'click') {
    const coords = new Float32Array(b * 2);
    const labels = new Float32Array(b);
    prompts.forEach((p, i) => {
      coords[i * 2] = p.point!.x;
      coords[i * 2 + 1] = p.point!.y;
      labels[i] = p.point!.label;
    });
    return { points: { coords: tf.tensor3d(coords, [b, 1, 2]), labels: tf.tensor2d(labels, [b, 1]) } };
  }
  if (mode === 'box') {
    const boxes = new Float32Array(b * 4);
    prompts.forEach((p, i) => boxes.set(p.box!, i * 4));
    return { boxes: tf.tensor2d(boxes, [b, 4]) };
  }
  return {};
}

export interface ScoreImagesOptions {
  indices: readonly number[];
  /** The prompt of image i (already in this model's image pixels). */
  prompt(index: number): SamplePrompt;
  mode: PromptMode;
  /** Images per forward pass: eval's batch gives eval's batches when `indices` is the whole split. */
  batch: number;
  /** Called for every image with its scores and the sample and probabilities (`outSize² × classes`, channels-last). */
  onImage(score: ImageScore, sample: Sample, probability: Float32Array): void;
}

/** Scores the images `indices` of `data` with `peft` (in eval mode), one batch of consecutive indices at a time. Leaves no tensors behind. */
export async function scoreImages(peft: PeftModel, data: Dataset, o: ScoreImagesOptions): Promise<void> {
  const classes = data.channels;
  const c = classes.length;
  for (let at = 0; at < o.indices.length; at += o.batch) {
    const chunk = o.indices.slice(at, at + o.batch);
    const samples = await Promise.all(chunk.map((i) => data.get(i)));
    const prompts = promptTensors(chunk.map((i) => o.prompt(i)), o.mode);
    const batch = makeBatch(peft, samples, prompts);
    let prob: Float32Array;
    try {
      const p = tf.tidy(() => tf.sigmoid(predictLogits(peft, batch, c)));
      try {
        prob = (await p.data()) as Float32Array;
      } finally {
        p.dispose();
      }
    } finally {
      tf.dispose([batch.images, batch.targets]);
      disposePrompts(prompts);
    }
    const per = prob.length / samples.length;
    samples.forEach((s, k) => {
      const probability = prob.slice(k * per, (k + 1) * per);
      const scores = imageScores(probability, s.target, c);
      const diceByClass = Object.fromEntries(classes.map((name, j) => [name, scores[j]!.dice]));
      const dice = scores.reduce((a, x) => a + x.dice, 0) / c;
      o.onImage({ index: chunk[k]!, name: s.name, dice, diceByClass }, s, probability);
    });
  }
}
