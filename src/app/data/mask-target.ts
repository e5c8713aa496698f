// Soft targets from raters' masks, following Medical-SAM-Adapter's REFUGE
// dataset: each rater's mask (read as grey) is resized to the image size and
// binarised (`ToTensor() > 0.5`, i.e. grey > 127.5 — white is the structure),
// then resized to the output size and averaged over raters. The reference's
// second resize is a plain (non-antialiased) bilinear interpolation; here both
// resizes are the antialiased bilinear of `resize.ts`, so a downscaled target
// pixel is the covered fraction rather than a sample of 4 neighbours.
import type { Image8 } from './image-io.js';
import { resizeBilinear } from './resize.js';

/** One rater's mask → binary at `imageSize`, then soft at `outSize`. */
export function binarisedMask(mask: Image8, imageSize: number, outSize: number): Float32Array {
  if (mask.channels !== 1) throw new Error('binarisedMask: expected a grey mask');
  const atImage = resizeBilinear(mask.data, mask.width, mask.height, 1, imageSize, imageSize);
  for (let i = 0; i < atImage.length; i++) atImage[i] = atImage[i]! > 127.5 ? 1 : 0;
  return outSize === imageSize ? atImage : resizeBilinear(atImage, imageSize, imageSize, 1, outSize, outSize);
}

/** Mean over raters of their binarised masks, `outSize * outSize`. */
export function raterMean(masks: Image8[], imageSize: number, outSize: number): Float32Array {
  const out = new Float32Array(outSize * outSize);
  for (const m of masks) {
    const b = binarisedMask(m, imageSize, outSize);
    for (let i = 0; i < out.length; i++) out[i]! += b[i]!;
  }
  for (let i = 0; i < out.length; i++) out[i] = Math.min(1, Math.max(0, out[i]! / masks.length));
  return out;
}

/** Interleaves per-channel planes (`o*o` each) into channels-last `o*o*C`. */
export function interleave(planes: Float32Array[]): Float32Array {
  const c = planes.length;
  const n = planes[0]!.length;
  const out = new Float32Array(n * c);
  for (let k = 0; k < c; k++) {
    const p = planes[k]!;
    for (let i = 0; i < n; i++) out[i * c + k] = p[i]!;
  }
  return out;
}
