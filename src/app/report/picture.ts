// One picture of the report's Predictions section: a sample's image at
// PICTURE_SIDE pixels, optionally with masks (a prediction's probabilities or
// the soft ground truth, resized bilinearly and cut at 0.5, one colour per
// class) and the prompt, as PNG bytes.
import { toBytes, type Sample } from '../data/dataset.js';
import { encodePng, type Image8 } from '../data/image-io.js';
import { resizeBilinear } from '../data/resize.js';
import { markBox, markPoint, PROMPT_COLOURS } from '../pictures/mask-image.js';
import { binaryMask, classColour, markSizes, overlayNested } from '../pictures/overlay.js';
import type { SamplePrompt } from '../train/prompts.js';

/** Side of every picture in pixels (the page shows them smaller, so they stay crisp on dense screens). */
export const PICTURE_SIDE = 256;

/** Masks to draw: `outSize² × classes` values in [0, 1], channels-last. */
export interface PictureMasks {
  probability: Float32Array;
  outSize: number;
}

/** The PNG of `sample`'s image with `masks` and `prompt` (in the sample's image pixels) drawn over it. */
export function drawPicture(sample: Sample, masks?: PictureMasks, prompt?: SamplePrompt): Uint8Array {
  const d = PICTURE_SIDE;
  let img: Image8 = { width: d, height: d, channels: 3, data: toBytes(resizeBilinear(sample.image, sample.size, sample.size, 3, d, d)) };
  const sizes = markSizes(d, d);
  if (masks) {
    const c = sample.channels;
    const up = resizeBilinear(masks.probability, masks.outSize, masks.outSize, c, d, d);
    const plane = new Float32Array(d * d);
    const layers = Array.from({ length: c }, (_, k) => {
      for (let i = 0; i < d * d; i++) plane[i] = up[i * c + k]!;
      return { mask: binaryMask(plane), colour: classColour(k) };
    });
    img = overlayNested(img, layers, { outline: sizes.outline });
  }
  if (prompt) {
    const s = d / sample.size;
    const at = (v: number) => (v + 0.5) * s - 0.5;
    if (prompt.box) markBox(img, [prompt.box[0] * s, prompt.box[1] * s, (prompt.box[2] + 1) * s - 1, (prompt.box[3] + 1) * s - 1], PROMPT_COLOURS.positive, sizes.outline);
    if (prompt.point) markPoint(img, at(prompt.point.x), at(prompt.point.y), prompt.point.label === 1 ? PROMPT_COLOURS.positive : PROMPT_COLOURS.negative, sizes.radius);
  }
  return encodePng(img);
}
