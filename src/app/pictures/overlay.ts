// Predicted masks as pictures: a probability map cut into a binary mask, the
// binary mask and the probability map as grey PNGs, and the mask drawn over
// its image (fill + outline, `mask-image.ts`). The class colours are shared by
// `peft predict`'s overlays and the training run's `--vis` panels.
import { encode as fastPngEncode } from 'fast-png';
import type { Image8 } from '../data/image-io.js';
import { overlayMasks, type MaskLayer, type OverlayOptions, type Rgb } from './mask-image.js';

/** Class k's colour: yellow, cyan, magenta, orange, then round again (REFUGE: cup yellow, disc cyan). */
export const CLASS_COLOURS: readonly Rgb[] = [
  [255, 214, 0],
  [0, 200, 255],
  [255, 64, 214],
  [255, 128, 0],
];

export const classColour = (k: number): Rgb => CLASS_COLOURS[k % CLASS_COLOURS.length]!;

/** 1 where `probability > threshold` (0.5: where the logit is positive, as evaluation's Dice@0.5 cuts), else 0. */
export function binaryMask(probability: ArrayLike<number>, threshold = 0.5): Uint8Array {
  const out = new Uint8Array(probability.length);
  for (let i = 0; i < out.length; i++) out[i] = probability[i]! > threshold ? 1 : 0;
  return out;
}

/** Pixels set in a 0/1 mask. */
export function maskArea(mask: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < mask.length; i++) n += mask[i] ? 1 : 0;
  return n;
}

/** A 0/1 mask as an 8-bit grey PNG: 0 outside, 255 inside. */
export function maskPng(mask: Uint8Array, width: number, height: number): Uint8Array {
  const grey = new Uint8Array(mask.length);
  for (let i = 0; i < mask.length; i++) grey[i] = mask[i] ? 255 : 0;
  return fastPngEncode({ width, height, data: grey, channels: 1, depth: 8 });
}

/**
 * A probability map as a 16-bit grey PNG: value round(p * 65535), so p is
 * read back as value / 65535 to within 1/131070 (8 bits would blur the
 * 0.5 boundary to 1/510).
 */
export function probabilityPng16(probability: ArrayLike<number>, width: number, height: number): Uint8Array {
  const data = new Uint16Array(width * height);
  for (let i = 0; i < data.length; i++) data[i] = Math.round(Math.min(1, Math.max(0, probability[i]!)) * 65535);
  return fastPngEncode({ width, height, data, channels: 1, depth: 16 });
}

export interface OverlayMaskOptions extends OverlayOptions {
  /** Cut of the probability (default 0.5). */
  threshold?: number;
  colour?: Rgb;
}

/** `image` with the mask `probability > threshold` drawn over it (fill and outline); a new RGB image. */
export function overlayMask(image: Image8, probability: ArrayLike<number>, o: OverlayMaskOptions = {}): Image8 {
  return overlayMasks(image, [{ mask: binaryMask(probability, o.threshold), colour: o.colour ?? classColour(0) }], o);
}

/**
 * Several masks over one image, each in its colour; the larger ones first, so
 * a nested mask (the cup in the disc) is drawn on top and stays visible.
 */
export function overlayNested(image: Image8, layers: readonly MaskLayer[], o: OverlayOptions = {}): Image8 {
  const sized = layers.map((l) => ({ layer: l, area: maskArea(l.mask) }));
  sized.sort((a, b) => b.area - a.area);
  return overlayMasks(image, sized.map((s) => s.layer), o);
}

/** Outline width and point radius that read well at this image size (2 px and 4 px at 256). */
export function markSizes(width: number, height: number): { outline: number; radius: number } {
  const side = Math.min(width, height);
  return { outline: Math.max(1, Math.round(side / 128)), radius: Math.max(2, Math.round(side / 64)) };
}
