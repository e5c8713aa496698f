// Prompts sampled from soft targets, as Medical-SAM-Adapter's `random_click`
// and box helpers do, but seeded:
// - click: one positive point drawn uniformly among the pixels where all
//   raters agree (target == 1); if there are none, among the pixels of the
//   highest agreement (the max value, the reference's rule). An EMPTY target
//   (max 0) gives a NEGATIVE click (label 0) at a uniformly drawn pixel — the
//   reference's behaviour (its label becomes the max, 0).
// - box: the bounding box of the target binarised at 0.5 (of the max-agreement
//   pixels when nothing reaches 0.5), each side moved by N(0, jitter x side
//   length) (clamped to +-2 sigma), then clamped to the image. An empty target
//   gives the whole image.
// - none: no prompt (SAM then sees only its no-mask embedding).
// The target lives at `outSize`, the prompt in input-image pixels (x, y):
// a target pixel j maps to the image coordinate of its centre,
// (j + 0.5) * size / outSize - 0.5. By default the prompt comes from channel 0
// (REFUGE: the cup, as the reference; the cup lies inside the disc).
import * as tf from '@tensorflow/tfjs';
import { PeftError } from '../../core/errors.js';
import type { Prompts } from '../../core/peft/backbone.js';
import type { Sample } from '../data/dataset.js';
import type { Rng } from '../data/random.js';

export type PromptMode = 'click' | 'box' | 'none';
export const promptModes: readonly PromptMode[] = ['click', 'box', 'none'];

export interface PromptOptions {
  /** Target channel the prompt is drawn from. Default 0. */
  channel?: number;
  /** Box side jitter as a fraction of the side length (std). Default 0.1; 0 for the exact box. */
  boxJitter?: number;
}

export interface Click {
  /** target-pixel coordinates (column, row) */
  x: number;
  y: number;
  /** 1 positive, 0 negative */
  label: 0 | 1;
}

/** Tolerance for "all raters agree" on float targets. */
const agreeTol = 1e-4;

/** One channel of a channels-last target as an `outSize * outSize` plane. */
export function targetPlane(target: Float32Array, outSize: number, channels: number, channel: number): Float32Array {
  if (channel < 0 || channel >= channels || !Number.isInteger(channel)) throw new PeftError(`prompt channel ${channel} out of range (0..${channels - 1})`);
  if (target.length !== outSize * outSize * channels) throw new Error(`targetPlane: expected ${outSize * outSize * channels} values, got ${target.length}`);
  if (channels === 1) return target;
  const out = new Float32Array(outSize * outSize);
  for (let i = 0; i < out.length; i++) out[i] = target[i * channels + channel]!;
  return out;
}

/** A click on an `outSize x outSize` plane, in target pixels. */
export function sampleClick(plane: Float32Array, outSize: number, rng: Rng): Click {
  let max = 0;
  for (let i = 0; i < plane.length; i++) if (plane[i]! > max) max = plane[i]!;
  if (!(max > 0)) {
    const i = rng.int(plane.length);
    return { x: i % outSize, y: Math.floor(i / outSize), label: 0 };
  }
  const level = max >= 1 - agreeTol ? 1 - agreeTol : max - agreeTol * max;
  let count = 0;
  for (let i = 0; i < plane.length; i++) if (plane[i]! >= level) count++;
  let k = rng.int(count);
  for (let i = 0; i < plane.length; i++) {
    if (plane[i]! >= level && k-- === 0) return { x: i % outSize, y: Math.floor(i / outSize), label: 1 };
  }
  throw new Error('unreachable');
}

/** Bounding box (x0, y0, x1, y1) of the mask in target pixels, or undefined if empty. */
export function maskBox(plane: Float32Array, outSize: number): [number, number, number, number] | undefined {
  let max = 0;
  for (let i = 0; i < plane.length; i++) if (plane[i]! > max) max = plane[i]!;
  if (!(max > 0)) return undefined;
  const level = max > 0.5 ? 0.5 : max - agreeTol * max; // strict > 0.5, else the max-agreement pixels
  let x0 = outSize;
  let y0 = outSize;
  let x1 = -1;
  let y1 = -1;
  for (let y = 0; y < outSize; y++) {
    for (let x = 0; x < outSize; x++) {
      const v = plane[y * outSize + x]!;
      if (max > 0.5 ? v > level : v >= level) {
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
      }
    }
  }
  return [x0, y0, x1, y1];
}

/** Target pixel index → input-image coordinate of its centre. */
export function toImageCoord(j: number, size: number, outSize: number): number {
  return ((j + 0.5) * size) / outSize - 0.5;
}

/** A jittered box in input-image pixels, clamped to the image. */
export function sampleBox(plane: Float32Array, outSize: number, size: number, rng: Rng, jitter = 0.1): [number, number, number, number] {
  const box = maskBox(plane, outSize);
  if (!box) return [0, 0, size - 1, size - 1];
  const s = size / outSize;
  // edges of the covered pixels, in image coordinates
  let x0 = box[0] * s;
  let y0 = box[1] * s;
  let x1 = (box[2] + 1) * s - 1;
  let y1 = (box[3] + 1) * s - 1;
  if (jitter > 0) {
    const w = x1 - x0 + 1;
    const h = y1 - y0 + 1;
    const d = (side: number) => Math.max(-2, Math.min(2, rng.normal())) * jitter * side;
    x0 += d(w);
    y0 += d(h);
    x1 += d(w);
    y1 += d(h);
  }
  const clamp = (v: number) => Math.max(0, Math.min(size - 1, v));
  x0 = clamp(x0);
  y0 = clamp(y0);
  x1 = clamp(x1);
  y1 = clamp(y1);
  if (x1 < x0) [x0, x1] = [x1, x0];
  if (y1 < y0) [y0, y1] = [y1, y0];
  return [x0, y0, x1, y1];
}

/** Prompt values for one sample (no tensors). */
export interface SamplePrompt {
  point?: { x: number; y: number; label: 0 | 1 };
  box?: [number, number, number, number];
}

export function samplePrompt(sample: Sample, mode: PromptMode, rng: Rng, opts: PromptOptions = {}): SamplePrompt {
  if (mode === 'none') return {};
  const plane = targetPlane(sample.target, sample.outSize, sample.channels, opts.channel ?? 0);
  if (mode === 'click') {
    const c = sampleClick(plane, sample.outSize, rng);
    return { point: { x: toImageCoord(c.x, sample.size, sample.outSize), y: toImageCoord(c.y, sample.size, sample.outSize), label: c.label } };
  }
  if (mode === 'box') return { box: sampleBox(plane, sample.outSize, sample.size, rng, opts.boxJitter ?? 0.1) };
  throw new PeftError(`unknown prompt mode '${String(mode)}': choose click, box or none`);
}

/**
 * The prompts of a batch in the core `Prompts` shape (points `[B,1,2]` +
 * labels `[B,1]`, or boxes `[B,4]`, or nothing). The caller disposes the tensors.
 * Matches the trainer's `PromptBuilder` signature.
 */
export function buildPrompts(samples: Sample[], mode: PromptMode, rng: Rng, opts: PromptOptions = {}): Prompts {
  if (mode === 'none') return {};
  const ps = samples.map((s) => samplePrompt(s, mode, rng, opts));
  const b = samples.length;
  if (mode === 'click') {
    const coords = new Float32Array(b * 2);
    const labels = new Float32Array(b);
    ps.forEach((p, i) => {
      coords[i * 2] = p.point!.x;
      coords[i * 2 + 1] = p.point!.y;
      labels[i] = p.point!.label;
    });
    return { points: { coords: tf.tensor3d(coords, [b, 1, 2]), labels: tf.tensor2d(labels, [b, 1]) } };
  }
  const boxes = new Float32Array(b * 4);
  ps.forEach((p, i) => boxes.set(p.box!, i * 4));
  return { boxes: tf.tensor2d(boxes, [b, 4]) };
}

/** Disposes every tensor of a Prompts object. */
export function disposePrompts(p: Prompts): void {
  const ts: tf.Tensor[] = [];
  for (const t of [p.points?.coords, p.points?.labels, p.boxes, p.masks]) if (t) ts.push(t);
  tf.dispose(ts);
}
