// Masks as the page receives them: a foreground probability map thresholded
// at 0.5 into a binary mask, sent as a grey PNG (0 / 255) at the image's own
// size, base64-encoded in the JSON answer. The same PNG is what the page
// downloads, so what a user saves is exactly what the server computed.
import { encodePng } from '../data/image-io.js';

/** 1 where the probability exceeds 0.5 (logit > 0), else 0. */
export function binaryMask(probability: Float32Array): Uint8Array {
  const out = new Uint8Array(probability.length);
  for (let i = 0; i < out.length; i++) out[i] = probability[i]! > 0.5 ? 1 : 0;
  return out;
}

/** Pixels set in a 0/1 mask. */
export function maskArea(mask: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < mask.length; i++) n += mask[i]!;
  return n;
}

/** A 0/1 mask as a base64 grey PNG (0 outside, 255 inside). */
export function maskPngBase64(mask: Uint8Array, width: number, height: number): string {
  const grey = new Uint8Array(mask.length);
  for (let i = 0; i < mask.length; i++) grey[i] = mask[i] ? 255 : 0;
  return Buffer.from(encodePng({ width, height, channels: 1, data: grey })).toString('base64');
}
