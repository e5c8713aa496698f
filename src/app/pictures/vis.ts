// The training run's `--vis N` panels, after Medical-SAM-Adapter's `-vis`
// (function.py `validation_sam`, utils.py `vis_image`): every N validation
// batches, one PNG of the batch's first (up to 4) images, one row each:
//   image with its prompt | per class: ground truth | prediction, with Dice
// written into `<run>/vis/epoch-<e>-batch-<b>.png`. The Dice is evaluation's
// per-image Dice (averaged over its thresholds), so a panel shows the numbers
// the epoch's validation averages.
import * as tf from '@tensorflow/tfjs';
import { basename, dirname, join } from 'node:path';
import type { Prompts } from '../../core/peft/backbone.js';
import { writeFileAtomic } from '../../core/io/atomic.js';
import { makeDirInside } from '../../core/io/no-follow.js';
import { toBytes, type Sample } from '../data/dataset.js';
import { encodePng, type Image8 } from '../data/image-io.js';
import { resizeBilinear } from '../data/resize.js';
import type { EvalBatch } from '../train/evaluate.js';
import { imageScores } from '../train/metrics.js';
import { markBox, markPoint, PROMPT_COLOURS } from './mask-image.js';
import { binaryMask, classColour, markSizes, overlayNested } from './overlay.js';
import { panelRow, stackRows, type Tile } from './panel.js';

/** Images per panel, as the reference's `row_num = min(b, 4)`. */
export const VIS_ROWS = 4;

/** Side of a panel's tiles for input images of `imageSize` pixels: the input size, kept between 128 (captions fit) and 256. */
export function visTileSide(imageSize: number): number {
  return Math.min(256, Math.max(128, imageSize));
}

/** One image's prompt, in input-image pixels. */
export interface VisPrompt {
  points: { x: number; y: number; label: number }[];
  box?: [number, number, number, number];
}

export interface VisSample {
  sample: Sample;
  /** `outSize² × channels` probabilities, channels-last. */
  probability: Float32Array;
  prompt?: VisPrompt;
}

/** The prompts of a batch as values, per image (padding points, label -1, left out). */
export function promptValues(prompts: Prompts, batch: number): (VisPrompt | undefined)[] {
  const out: (VisPrompt | undefined)[] = Array.from({ length: batch }, () => undefined);
  if (prompts.points) {
    const [, n] = prompts.points.coords.shape;
    const xy = prompts.points.coords.dataSync();
    const labels = prompts.points.labels.dataSync();
    for (let b = 0; b < batch; b++) {
      const points: VisPrompt['points'] = [];
      for (let k = 0; k < n; k++) if (labels[b * n + k]! >= 0) points.push({ x: xy[(b * n + k) * 2]!, y: xy[(b * n + k) * 2 + 1]!, label: labels[b * n + k]! });
      out[b] = { points };
    }
  }
  if (prompts.boxes) {
    const v = prompts.boxes.dataSync();
    for (let b = 0; b < batch; b++) out[b] = { points: out[b]?.points ?? [], box: [v[b * 4]!, v[b * 4 + 1]!, v[b * 4 + 2]!, v[b * 4 + 3]!] };
  }
  return out;
}

/** One channel of a channels-last plane stack, resized to `side` and cut at 0.5. */
function classMask(values: Float32Array, size: number, channels: number, k: number, side: number): Uint8Array {
  const plane = new Float32Array(size * size);
  for (let i = 0; i < plane.length; i++) plane[i] = values[i * channels + k]!;
  return binaryMask(resizeBilinear(plane, size, size, 1, side, side));
}

/** The rows of a panel: image + prompt | (truth | prediction, Dice) per class. */
export function visPanel(samples: readonly VisSample[], classes: readonly string[]): Image8 {
  const rows = samples.slice(0, VIS_ROWS).map(({ sample, probability, prompt }) => {
    const side = visTileSide(sample.size);
    const base: Image8 = { width: side, height: side, channels: 3, data: toBytes(resizeBilinear(sample.image, sample.size, sample.size, 3, side, side)) };
    const { outline, radius } = markSizes(side, side);
    const shown: Image8 = { ...base, data: base.data.slice() };
    if (prompt) {
      const s = side / sample.size;
      if (prompt.box) markBox(shown, [prompt.box[0] * s, prompt.box[1] * s, (prompt.box[2] + 1) * s - 1, (prompt.box[3] + 1) * s - 1], PROMPT_COLOURS.positive, outline);
      for (const p of prompt.points) markPoint(shown, (p.x + 0.5) * s - 0.5, (p.y + 0.5) * s - 0.5, p.label > 0 ? PROMPT_COLOURS.positive : PROMPT_COLOURS.negative, radius);
    }
    const dice = imageScores(probability, sample.target, sample.channels).map((c) => c.dice);
    const tiles: Tile[] = [{ image: shown, caption: sample.name }];
    classes.forEach((name, k) => {
      const colour = classColour(k);
      const truth = classMask(sample.target, sample.outSize, sample.channels, k, side);
      const pred = classMask(probability, sample.outSize, sample.channels, k, side);
      tiles.push({ image: overlayNested(base, [{ mask: truth, colour }], { outline }), caption: `${name} truth` });
      tiles.push({ image: overlayNested(base, [{ mask: pred, colour }], { outline }), caption: `${name} Dice ${dice[k]!.toFixed(3)}` });
    });
    return panelRow(tiles);
  });
  return stackRows(rows);
}

export interface VisWriterOptions {
  /** Folder of the panels (`<run>/vis`). */
  dir: string;
  /** Every N validation batches (the first batch always). */
  every: number;
  /** The epoch the validation ends (for the file name). */
  epoch: number;
  classes: readonly string[];
}

/** The file of batch `b`'s panel at `epoch`. */
export const visFile = (epoch: number, batch: number) => `epoch-${epoch}-batch-${batch}.png`;

/** An evaluation batch hook that writes the panel of every N-th batch; returns the files it wrote as it goes. */
export function visBatchWriter(o: VisWriterOptions): { onBatch: (b: EvalBatch) => void; written: string[] } {
  const written: string[] = [];
  const onBatch = (b: EvalBatch) => {
    if (b.index % o.every !== 0) return;
    const shown = b.samples.slice(0, VIS_ROWS);
    const t = tf.tidy(() => tf.sigmoid(b.logits.slice([0, 0, 0, 0], [shown.length, -1, -1, -1])));
    const probs = t.dataSync() as Float32Array;
    t.dispose();
    const per = probs.length / shown.length;
    const prompts = promptValues(b.prompts, b.samples.length);
    const panel = visPanel(
      shown.map((sample, i) => ({ sample, probability: probs.subarray(i * per, (i + 1) * per), prompt: prompts[i] })),
      o.classes,
    );
    // <run>/vis: a real folder of the run, never a link to elsewhere (the panel itself is renamed into place)
    makeDirInside(dirname(o.dir), basename(o.dir));
    const file = join(o.dir, visFile(o.epoch, b.index));
    writeFileAtomic(file, encodePng(panel));
    written.push(file);
  };
  return { onBatch, written };
}
