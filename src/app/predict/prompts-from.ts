// Prompts drawn from ground-truth masks as evaluation draws them
// (`train/prompts.ts`): the target of the prompt class (the model's first,
// evaluation's channel 0: a REFUGE run's cup) is made as the dataset loaders
// make it (each mask resized to the input size and binarised, then resized to
// the target size, averaged over raters), and a seeded click or box is drawn
// from it. Evaluation draws the prompts of each batch from one stream,
// `Rng(seed, 'eval-prompt', first index of the batch)`, so the images, in the
// same order and with the same batch size, get the prompts `peft eval` gives
// them. The prompt is then moved from input pixels to the image's own.
//
// Where an image's masks are found, in the mask folder (stem = the image's
// file name without its extension, class = the prompt class):
//   <stem>/<stem>_seg_<class>_<k>.png, or <stem>_seg_<class>_<k>.png (REFUGE
//   raters, k = 1, 2, …; averaged);
//   else one mask: <stem>_<class>, <stem>_mask, <stem>_segmentation or <stem>
//   itself, as .png, .bmp, .jpg or .jpeg (never the image itself).
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, extname, join, resolve } from 'node:path';
import { PeftError } from '../../core/errors.js';
import type { Sample } from '../data/dataset.js';
import { readImage } from '../data/image-io.js';
import { raterMean } from '../data/mask-target.js';
import { Rng } from '../data/random.js';
import { samplePrompt, type PromptMode, type SamplePrompt } from '../train/prompts.js';
import { scaleCoord, scaleSpan } from './model-predictor.js';
import type { PromptSpec } from './types.js';

const maskExtensions = ['.png', '.bmp', '.jpg', '.jpeg'];

const isFile = (p: string) => {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
};

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The rater masks `<stem>_seg_<cls>_<k>.png` in `dir`, by k. */
function raterFiles(dir: string, stem: string, cls: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const re = new RegExp(`^${escapeRegExp(stem)}_seg_${escapeRegExp(cls)}_(\\d+)\\.png$`, 'i');
  return names
    .map((n) => ({ n, k: re.exec(n)?.[1] }))
    .filter((e): e is { n: string; k: string } => e.k !== undefined)
    .sort((a, b) => Number(a.k) - Number(b.k))
    .map((e) => join(dir, e.n));
}

/** The ground-truth files of `image` in `maskDir` for class `cls`, or a PeftError naming what was looked for. */
export function findGroundTruth(maskDir: string, image: string, cls: string): string[] {
  const dir = resolve(maskDir);
  const self = resolve(image);
  const stem = basename(image, extname(image));
  for (const d of [join(dir, stem), dir]) {
    const raters = raterFiles(d, stem, cls);
    if (raters.length) return raters;
  }
  for (const name of [`${stem}_${cls}`, `${stem}_mask`, `${stem}_segmentation`, `${stem}_Segmentation`, stem]) {
    for (const ext of maskExtensions) {
      const p = join(dir, name + ext);
      if (p !== self && isFile(p)) return [p];
    }
  }
  if (!existsSync(dir)) throw new PeftError(`--prompts-from ${maskDir}: no such folder`);
  throw new PeftError(`no ground truth for ${basename(image)} in ${maskDir} (looked for ${stem}/${stem}_seg_${cls}_1.png, ${stem}_${cls}.png, ${stem}_mask.png, ${stem}.png…)`);
}

/** The soft target of the masks at `outSize`, as the loaders make it for an input of `imageSize`. */
export async function groundTruthTarget(files: readonly string[], imageSize: number, outSize: number): Promise<Float32Array> {
  return raterMean(await Promise.all(files.map((f) => readImage(f, 'grey'))), imageSize, outSize);
}

/** A prompt drawn in input pixels (a square of `size`), moved to an image of `width x height` pixels. */
export function toImagePrompt(p: SamplePrompt, size: number, width: number, height: number): PromptSpec {
  const out: PromptSpec = {};
  if (p.point) out.points = [{ x: scaleCoord(p.point.x, size, width), y: scaleCoord(p.point.y, size, height), label: p.point.label }];
  if (p.box) {
    const [x0, x1] = scaleSpan(p.box[0], p.box[2], size, width);
    const [y0, y1] = scaleSpan(p.box[1], p.box[3], size, height);
    out.box = [x0, y0, x1, y1];
  }
  return out;
}

/**
 * Evaluation's prompt streams: image `index` (0, 1, … in order) draws from the
 * stream of its batch, after the images before it in that batch. Call `next`
 * in index order.
 */
export class EvalPromptStream {
  private rng: Rng | undefined;
  private last = -1;

  constructor(
    readonly mode: PromptMode,
    readonly seed: number,
    readonly batch: number,
  ) {
    if (!Number.isSafeInteger(batch) || batch < 1) throw new PeftError(`prompt batch must be a positive integer, got ${batch}`);
  }

  /** The prompt of image `index` from its target (`outSize²`, one class), in input pixels (a square of `imageSize`). */
  next(index: number, target: Float32Array, imageSize: number, outSize: number): SamplePrompt {
    if (index <= this.last) throw new Error(`EvalPromptStream: index ${index} after ${this.last}`);
    const at = Math.floor(index / this.batch) * this.batch;
    // a new batch, or a skipped start: the batch's own stream
    if (!this.rng || at > this.last) this.rng = new Rng(this.seed, 'eval-prompt', at);
    this.last = index;
    const sample: Sample = { name: String(index), image: new Float32Array(0), target, size: imageSize, outSize, channels: 1 };
    return samplePrompt(sample, this.mode, this.rng);
  }
}
