// Prompts written as text, as `peft predict` takes them: `--point x,y[:label]`
// (label 1 foreground, the default, or 0 background; repeatable: the points
// form one prompt) and `--box x0,y0,x1,y1` (first and last pixel; repeatable:
// each box is a prompt of its own, decoded against the same image embedding).
// Coordinates are in the image's own pixels.
import { PeftError } from '../../core/errors.js';
import type { PointPrompt, PromptSpec } from './types.js';

const num = String.raw`\s*(-?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)\s*`;
const pointRe = new RegExp(`^${num},${num}(?::\\s*([01])\\s*)?$`, 'i');
const boxRe = new RegExp(`^${num},${num},${num},${num}$`, 'i');

/** `x,y` or `x,y:label`. */
export function parsePoint(text: string): PointPrompt {
  const m = pointRe.exec(text);
  if (!m) throw new PeftError(`--point '${text}': expected x,y or x,y:label (label 1 foreground, 0 background), e.g. --point 120,88`);
  return { x: Number(m[1]), y: Number(m[2]), label: m[3] === '0' ? 0 : 1 };
}

/** `x0,y0,x1,y1`, with x0 <= x1 and y0 <= y1. */
export function parseBox(text: string): [number, number, number, number] {
  const m = boxRe.exec(text);
  if (!m) throw new PeftError(`--box '${text}': expected x0,y0,x1,y1 (the box's first and last pixel), e.g. --box 40,30,180,150`);
  const b = [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])] as [number, number, number, number];
  if (b[2] < b[0] || b[3] < b[1]) throw new PeftError(`--box '${text}': x1 must not be left of x0, nor y1 above y0`);
  return b;
}

/** The prompts the flags describe: the points as one prompt, with the box if there is one; several boxes, one prompt each. */
export function promptsFromText(points: readonly string[], boxes: readonly string[]): PromptSpec[] {
  const ps = points.map(parsePoint);
  const bs = boxes.map(parseBox);
  if (bs.length > 1 && ps.length > 0) throw new PeftError('--point goes with one --box (a prompt of both); with several boxes, each box is its own prompt: give the points in another run');
  if (bs.length > 1) return bs.map((box) => ({ box }));
  if (ps.length === 0 && bs.length === 0) return [];
  return [{ ...(ps.length ? { points: ps } : {}), ...(bs.length ? { box: bs[0]! } : {}) }];
}
