// Seeded data augmentation: horizontal flip, a small affine (rotation, scale,
// translation) applied identically to the image (at image size) and the soft
// target (at out size), and colour jitter (brightness, contrast, saturation)
// applied to the image only. Pixels mapped from outside the source are 0
// (black, like the fundus surround; background for masks).
import { z } from 'zod';
import type { Rng } from './random.js';

export const augmentSchema = z.object({
  flip: z.number().min(0).max(1).default(0.5).describe('probability of a horizontal flip'),
  rotate: z.number().min(0).max(180).default(10).describe('maximum rotation in degrees (uniform in +-rotate)'),
  scale: z.number().min(0).max(0.9).default(0.1).describe('maximum relative zoom (uniform in 1 +- scale)'),
  translate: z.number().min(0).max(0.5).default(0.05).describe('maximum shift as a fraction of the side (per axis)'),
  brightness: z.number().min(0).max(1).default(0.2).describe('brightness factor uniform in 1 +- brightness'),
  contrast: z.number().min(0).max(1).default(0.2).describe('contrast factor uniform in 1 +- contrast'),
  saturation: z.number().min(0).max(1).default(0.2).describe('saturation factor uniform in 1 +- saturation'),
});
export type AugmentOptions = z.infer<typeof augmentSchema>;
export type AugmentInput = z.input<typeof augmentSchema>;

/** The random draw for one sample, so it can be inspected or replayed. */
export interface AugmentParams {
  flip: boolean;
  /** radians */
  angle: number;
  scale: number;
  /** shift as a fraction of the side */
  tx: number;
  ty: number;
  brightness: number;
  contrast: number;
  saturation: number;
}

/** Draws the parameters; always consumes the same number of draws. */
export function drawAugment(rng: Rng, opts: AugmentOptions): AugmentParams {
  const u = () => rng.uniform(-1, 1);
  const flip = rng.next() < opts.flip;
  const angle = (u() * opts.rotate * Math.PI) / 180;
  const scale = 1 + u() * opts.scale;
  const tx = u() * opts.translate;
  const ty = u() * opts.translate;
  const brightness = 1 + u() * opts.brightness;
  const contrast = 1 + u() * opts.contrast;
  const saturation = 1 + u() * opts.saturation;
  return { flip, angle, scale, tx, ty, brightness, contrast, saturation };
}

function isIdentityGeometry(p: AugmentParams): boolean {
  return !p.flip && p.angle === 0 && p.scale === 1 && p.tx === 0 && p.ty === 0;
}

/**
 * Warps a square `size x size x c` array: output pixel centre (in normalised
 * coordinates about the centre) is mapped back through the inverse affine and
 * sampled bilinearly (half-pixel centres), zero outside.
 */
export function warp(src: Float32Array, size: number, c: number, p: AugmentParams): Float32Array {
  if (isIdentityGeometry(p)) return src;
  const out = new Float32Array(src.length);
  const cos = Math.cos(p.angle);
  const sin = Math.sin(p.angle);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      // output normalised coordinates in [-0.5, 0.5]
      const ux = (x + 0.5) / size - 0.5 - p.tx;
      const uy = (y + 0.5) / size - 0.5 - p.ty;
      // inverse rotation and scale
      let sx = (cos * ux + sin * uy) / p.scale;
      const sy = (-sin * ux + cos * uy) / p.scale;
      if (p.flip) sx = -sx;
      const fx = (sx + 0.5) * size - 0.5;
      const fy = (sy + 0.5) * size - 0.5;
      const x0 = Math.floor(fx);
      const y0 = Math.floor(fy);
      const ax = fx - x0;
      const ay = fy - y0;
      const o = (y * size + x) * c;
      for (let dy = 0; dy <= 1; dy++) {
        const yy = y0 + dy;
        if (yy < 0 || yy >= size) continue;
        const wy = dy ? ay : 1 - ay;
        for (let dx = 0; dx <= 1; dx++) {
          const xx = x0 + dx;
          if (xx < 0 || xx >= size) continue;
          const w = wy * (dx ? ax : 1 - ax);
          if (w === 0) continue;
          const s = (yy * size + xx) * c;
          for (let ch = 0; ch < c; ch++) out[o + ch]! += w * src[s + ch]!;
        }
      }
    }
  }
  return out;
}

/** Brightness, contrast and saturation on 0..255 RGB floats, clamped (torchvision's order). */
export function colourJitter(img: Float32Array, p: AugmentParams): Float32Array {
  if (p.brightness === 1 && p.contrast === 1 && p.saturation === 1) return img;
  const n = img.length / 3;
  const out = new Float32Array(img.length);
  const clamp = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : v);
  for (let i = 0; i < img.length; i++) out[i] = clamp(img[i]! * p.brightness);
  let mean = 0;
  for (let i = 0; i < n; i++) mean += 0.299 * out[i * 3]! + 0.587 * out[i * 3 + 1]! + 0.114 * out[i * 3 + 2]!;
  mean /= n;
  for (let i = 0; i < out.length; i++) out[i] = clamp(mean + p.contrast * (out[i]! - mean));
  for (let i = 0; i < n; i++) {
    const g = 0.299 * out[i * 3]! + 0.587 * out[i * 3 + 1]! + 0.114 * out[i * 3 + 2]!;
    for (let c = 0; c < 3; c++) out[i * 3 + c] = clamp(g + p.saturation * (out[i * 3 + c]! - g));
  }
  return out;
}

/** Augments one sample in place of copies: geometry on both, colour on the image. */
export function augmentSample(
  image: Float32Array,
  size: number,
  target: Float32Array,
  outSize: number,
  channels: number,
  params: AugmentParams,
): { image: Float32Array; target: Float32Array } {
  const img = colourJitter(warp(image, size, 3, params), params);
  const tgt = warp(target, outSize, channels, params);
  return { image: img, target: tgt };
}
