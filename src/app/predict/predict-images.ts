// `peft predict` as a library call: segment image files with a Predictor and
// write, per image, each mask as a binary PNG at the image's own size, the
// probability map on request (16-bit grey PNG), an overlay (the image with
// the masks' fill and outline and the prompt), and one predictions.json for
// all of them. The encoder runs once per image, whatever the number of its
// prompts. An image that cannot be read or prompted is a warning naming it;
// the others go on. Nothing the user owns is overwritten: the output folder
// is new, empty, or a previous `peft predict`'s (its predictions.json lists
// the files it wrote); `force` writes into another folder, but still never
// over a file no `peft predict` wrote.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, extname, isAbsolute, join, relative, resolve } from 'node:path';
import { PeftError, errorReason } from '../../core/errors.js';
import { writeFileAtomic } from '../../core/io/atomic.js';
import { makeDir } from '../../core/io/make-dir.js';
import { readRegularTextFile } from '../../core/io/read-regular-file.js';
import { encodePng, readImage, type Image8, type ReadImageOptions } from '../data/image-io.js';
import type { PromptMode } from '../train/prompts.js';
import { markBox, markPoint, PROMPT_COLOURS, type MaskLayer, type Rgb } from '../pictures/mask-image.js';
import { binaryMask, classColour, markSizes, maskArea, maskPng, overlayNested, probabilityPng16 } from '../pictures/overlay.js';
import type { EvalPromptSettings } from './model-predictor.js';
import { SINGLE_CLASS } from './open-predictor.js';
import { EvalPromptStream, findGroundTruth, groundTruthTarget, toImagePrompt } from './prompts-from.js';
import type { PredictedMask, Predictor, PromptSpec } from './types.js';

export const PREDICTIONS_FILE = 'predictions.json';
/** The cut of the probability that makes the binary masks (evaluation's Dice@0.5). */
export const MASK_THRESHOLD = 0.5;

/** Where each image's prompts come from. */
export type PromptSource =
  /** The same prompts for every image, in image pixels (each one decoded on its own). */
  | { kind: 'given'; prompts: PromptSpec[] }
  /** Drawn from each image's ground truth in `dir`, as evaluation draws them (see prompts-from.ts). */
  | { kind: 'masks'; dir: string; mode: PromptMode; seed: number; batch: number; outSize: number }
  /** No prompt (the head's no-prompt embedding), as a run trained with `--prompt none`. */
  | { kind: 'none' };

/** A predictor, and what a trained model says of itself when it is one of ours. */
export type PredictorLike = Predictor & { readonly classes?: readonly string[]; readonly evalPrompts?: EvalPromptSettings; readonly describe?: Record<string, unknown> };

export interface PredictImagesOptions {
  out: string;
  /** Write into an existing folder that no `peft predict` wrote (never over a file of its own). */
  force?: boolean;
  /** Every candidate mask of the head instead of one mask per class. */
  multimask?: boolean;
  /** Also write the probability maps (16-bit grey PNG). */
  probabilities?: boolean;
  prompts: PromptSource;
  /** How DICOM and TIFF files are read: the grey-level window, the frame (page). */
  readOptions?: ReadImageOptions;
  /** Reads an image file (default: `readImage(path, 'rgb', readOptions)`). */
  read?: (path: string) => Promise<Image8>;
  /** Paths in messages and predictions.json are relative to this folder when inside it (default: the working folder). */
  cwd?: string;
  /** After each image, done or failed. */
  onProgress?(done: number, total: number): void;
  /** One line per image that failed. */
  warn?(line: string): void;
}

export interface MaskRecord {
  /** The class (one mask per class), or absent for a multimask candidate of no class. */
  label?: string;
  /** 1, 2, … with multimask (the head's order). */
  candidate?: number;
  file: string;
  probabilityFile?: string;
  /** Pixels in the binary mask. */
  area: number;
  /** The head's predicted IoU. */
  score: number;
}

export interface PromptRecord {
  prompt: PromptSpec;
  /** The ground-truth files it was drawn from. */
  from?: string[];
  decoderMs: number;
  overlays: string[];
  masks: MaskRecord[];
}

export interface ImageRecord {
  file: string;
  /** Stem of its output files. */
  name: string;
  width: number;
  height: number;
  encoderMs: number;
  predictions: PromptRecord[];
}

export interface PredictImagesResult {
  out: string;
  images: ImageRecord[];
  failed: { file: string; error: string }[];
  /** Files written by this call, relative to `out`. */
  written: string[];
  seconds: number;
}

interface PredictionsFile {
  tool: 'peft predict';
  version: 1;
  files: string[];
}

/** Readies the output folder; the files a previous `peft predict` wrote there. */
export function prepareOutput(out: string, force: boolean): Set<string> {
  if (!existsSync(out)) {
    try {
      makeDir(out);
    } catch (err) {
      throw new PeftError(`${out}: cannot create the output folder (${errorReason(err)})`);
    }
    return new Set();
  }
  if (!statSync(out).isDirectory()) throw new PeftError(`${out} exists and is not a folder: choose another --out`);
  const marker = join(out, PREDICTIONS_FILE);
  if (existsSync(marker)) {
    let j: Partial<PredictionsFile> | undefined;
    try {
      // a regular file only (a FIFO or /dev/zero there is refused, not read); outputs are renamed into place, never written through a link
      j = JSON.parse(readRegularTextFile(marker, 'json')) as Partial<PredictionsFile>;
    } catch {
      j = undefined;
    }
    if (j?.tool !== 'peft predict') throw new PeftError(`${marker} was not written by peft predict: choose another --out`);
    return new Set(Array.isArray(j.files) ? j.files.filter((f): f is string => typeof f === 'string') : []);
  }
  if (readdirSync(out).length > 0 && !force) {
    throw new PeftError(`${out} exists and holds files peft predict did not write: choose another --out, or pass --force to add to it (no file of yours is overwritten)`);
  }
  return new Set();
}

/** Output stems: the file name without its extension, `-2`, `-3`… where two inputs share one. */
export function outputStems(files: readonly string[]): string[] {
  const used = new Map<string, number>();
  return files.map((f) => {
    const stem = basename(f, extname(f)).replace(/[^\w.+-]+/g, '_') || 'image';
    const n = (used.get(stem) ?? 0) + 1;
    used.set(stem, n);
    return n === 1 ? stem : `${stem}-${n}`;
  });
}

const fileSafe = (s: string) => s.replace(/[^\w+-]+/g, '_');

/** Checks that a prompt's points and box lie in the image. */
export function checkPromptInside(prompt: PromptSpec, width: number, height: number): void {
  const where = `(x 0..${width - 1}, y 0..${height - 1})`;
  const out = (x: number, y: number) => !(x >= 0 && y >= 0 && x <= width - 1 && y <= height - 1);
  for (const p of prompt.points ?? []) if (out(p.x, p.y)) throw new PeftError(`point ${p.x},${p.y} lies outside the ${width}x${height} image ${where}`);
  if (prompt.box) {
    const [x0, y0, x1, y1] = prompt.box;
    if (out(x0, y0) || out(x1, y1)) throw new PeftError(`box ${prompt.box.join(',')} reaches outside the ${width}x${height} image ${where}`);
  }
}

/** The image with the masks drawn over it, and the prompt. */
function overlayImage(image: Image8, masks: readonly { mask: Uint8Array; colour: Rgb }[], prompt: PromptSpec): Image8 {
  const { outline, radius } = markSizes(image.width, image.height);
  const img = overlayNested(image, masks as MaskLayer[], { outline });
  if (prompt.box) markBox(img, prompt.box, PROMPT_COLOURS.positive, outline);
  for (const p of prompt.points ?? []) markPoint(img, p.x, p.y, p.label === 1 ? PROMPT_COLOURS.positive : PROMPT_COLOURS.negative, radius);
  return img;
}

/** Segments `files` and writes the results into `options.out`. */
export async function predictImages(predictor: PredictorLike, files: readonly string[], options: PredictImagesOptions): Promise<PredictImagesResult> {
  const t0 = performance.now();
  const cwd = options.cwd ?? process.cwd();
  const out = resolve(cwd, options.out);
  const previous = prepareOutput(out, options.force ?? false);
  const written = new Set<string>();
  const show = (abs: string) => {
    const r = relative(cwd, abs);
    return r && !r.startsWith('..') && !isAbsolute(r) ? r : abs;
  };
  const read = options.read ?? ((p: string) => readImage(p, 'rgb', options.readOptions));
  const stems = outputStems(files);
  const classes = predictor.classes?.length ? predictor.classes : [SINGLE_CLASS];
  const src = options.prompts;
  const stream = src.kind === 'masks' ? new EvalPromptStream(src.mode, src.seed, src.batch) : undefined;
  const images: ImageRecord[] = [];
  const failed: PredictImagesResult['failed'] = [];

  /** Writes one output file, refusing to replace a file no `peft predict` wrote. */
  const put = (name: string, bytes: Uint8Array) => {
    const path = join(out, name);
    if (!written.has(name) && !previous.has(name) && existsSync(path)) throw new PeftError(`${path} exists and was not written by peft predict: not overwritten (choose another --out)`);
    writeFileAtomic(path, bytes);
    written.add(name);
  };

  for (let i = 0; i < files.length; i++) {
    const file = files[i]!;
    const shown = show(file);
    try {
      const image = await read(file);
      const { width, height } = image;
      let prompts: { prompt: PromptSpec; from?: string[] }[];
      if (src.kind === 'given') {
        for (const p of src.prompts) {
          try {
            checkPromptInside(p, width, height);
          } catch (err) {
            throw new PeftError(`${shown} (${width}x${height}): ${(err as Error).message}`);
          }
        }
        prompts = src.prompts.map((prompt) => ({ prompt }));
      } else if (src.kind === 'masks') {
        const gt = findGroundTruth(src.dir, file, classes[0]!);
        const target = await groundTruthTarget(gt, predictor.imageSize, src.outSize);
        const drawn = stream!.next(i, target, predictor.imageSize, src.outSize);
        prompts = [{ prompt: toImagePrompt(drawn, predictor.imageSize, width, height), from: gt.map(show) }];
      } else {
        prompts = [{ prompt: {} }];
      }
      const embedding = predictor.embed(image);
      const record: ImageRecord = { file: shown, name: stems[i]!, width, height, encoderMs: round(embedding.ms), predictions: [] };
      try {
        prompts.forEach(({ prompt, from }, j) => {
          const prediction = predictor.predict(embedding, prompt, { multimask: options.multimask });
          const base = prompts.length > 1 ? `${stems[i]}.p${j + 1}` : stems[i]!;
          const binaries = prediction.masks.map((m) => binaryMask(m.probability, MASK_THRESHOLD));
          const names = prediction.masks.map((m, k) => maskSuffix(m, k, prediction.masks.length, options.multimask === true));
          const masks: MaskRecord[] = prediction.masks.map((m, k) => {
            const fileName = `${base}${names[k]!.pre}.mask${names[k]!.post}.png`;
            put(fileName, maskPng(binaries[k]!, width, height));
            const rec: MaskRecord = { ...(m.label !== undefined ? { label: m.label } : {}), ...(options.multimask ? { candidate: k + 1 } : {}), file: fileName, area: maskArea(binaries[k]!), score: round(m.score, 4) };
            if (options.probabilities) {
              rec.probabilityFile = `${base}${names[k]!.pre}.prob${names[k]!.post}.png`;
              put(rec.probabilityFile, probabilityPng16(m.probability, width, height));
            }
            return rec;
          });
          const overlays: string[] = [];
          if (options.multimask) {
            binaries.forEach((mask, k) => {
              overlays.push(`${base}.overlay${names[k]!.post}.png`);
              put(overlays[k]!, encodePng(overlayImage(image, [{ mask, colour: classColour(k) }], prompt)));
            });
          } else {
            overlays.push(`${base}.overlay.png`);
            put(overlays[0]!, encodePng(overlayImage(image, binaries.map((mask, k) => ({ mask, colour: classColour(k) })), prompt)));
          }
          record.predictions.push({ prompt, ...(from ? { from } : {}), decoderMs: round(prediction.ms), overlays, masks });
        });
      } finally {
        embedding.dispose();
      }
      images.push(record);
    } catch (err) {
      if (!(err instanceof PeftError)) throw err;
      // the image as the user named it (the readers name the absolute path)
      const message = err.message.split(file).join(shown);
      const line = message.includes(shown) ? message : `${shown}: ${message}`;
      failed.push({ file: shown, error: message });
      options.warn?.(line);
    }
    options.onProgress?.(i + 1, files.length);
  }

  const all = [...new Set([...previous, ...written])].filter((f) => f !== PREDICTIONS_FILE).sort();
  const json = {
    tool: 'peft predict',
    version: 1,
    createdAt: new Date().toISOString(),
    model: { label: predictor.label, imageSize: predictor.imageSize, classes, ...predictor.describe },
    threshold: MASK_THRESHOLD,
    multimask: options.multimask === true,
    probabilities: options.probabilities ? '16-bit grey PNG, value / 65535' : null,
    prompts: src.kind === 'masks' ? { from: show(resolve(cwd, src.dir)), mode: src.mode, seed: src.seed, batch: src.batch, outSize: src.outSize, class: classes[0] } : src.kind,
    images,
    failed,
    files: all,
  };
  writeFileAtomic(join(out, PREDICTIONS_FILE), `${JSON.stringify(json, null, 2)}\n`);
  written.add(PREDICTIONS_FILE);
  return { out, images, failed, written: [...written], seconds: (performance.now() - t0) / 1000 };
}

/**
 * What goes around `.mask` in a mask's file name: nothing for a model's only
 * mask (`x.mask.png`), the class before it for one of several classes
 * (`x.cup.mask.png`), the candidate after it with multimask (`x.mask-2.png`).
 */
function maskSuffix(m: PredictedMask, k: number, count: number, multimask: boolean): { pre: string; post: string } {
  if (multimask) return { pre: '', post: `-${k + 1}` };
  if (count === 1) return { pre: '', post: '' };
  return { pre: `.${m.label ? fileSafe(m.label) : k + 1}`, post: '' };
}

const round = (v: number, digits = 2) => Number(v.toFixed(digits));
