// One picture of the report's Predictions section: a sample's image at
// PICTURE_SIDE pixels, optionally with masks (a prediction's probabilities or
// the soft ground truth, resized bilinearly and cut at 0.5, one colour per
// class) and the prompt, as PNG bytes.
import { toBytes, type Sample } from '../data/dataset.js';
import { encodePng, type Image8 } from '../data/image-io.js';
import { resizeBilinear } from '../data/resize.js';
import { markBox, markPoint, overlayMasks, type MaskLayer, type Rgb } from '../pictures/mask-image.js';
import type { SamplePrompt } from '../train/prompts.js';

/** Side of every picture in pixels (the page shows them smaller, so they stay crisp on dense screens). */
export const PICTURE_SIDE = 256;

/** Class k's colour: yellow, cyan, magenta, orange, then round again (REFUGE: cup yellow, disc cyan). */
const PALETTE: readonly Rgb[] = [
  [255, 214, 0],
  [0, 200, 255],
  [255, 64, 214],
  [255, 128, 0],
];
const POSITIVE: Rgb = [40, 220, 60];
const NEGATIVE: Rgb = [240, 40, 40];

export const classColour = (k: number): string => `rgb(${PALETTE[k % PALETTE.length]!.join(',')})`;

/** Masks to draw: `outSize² × classes` values in [0, 1], channels-last. */
export interface PictureMasks {
  probability: Float32Array;
  outSize: number;
}

/** The PNG of `sample`'s image with `masks` and `prompt` (in the sample's image pixels) drawn over it. */
export function drawPicture(sample: Sample, masks?: PictureMasks, prompt?: SamplePrompt): Uint8Array {
  const d = PICTURE_SIDE;
  let img: Image8 = { width: d, height: d, channels: 3, data: toBytes(resizeBilinear(sample.image, sample.size, sample.size, 3, d, d)) };
  if (masks) {
    const c = sample.channels;
    const up = resizeBilinear(masks.probability, masks.outSize, masks.outSize, c, d, d);
    const layers: (MaskLayer & { area: number })[] = [];
    for (let k = 0; k < c; k++) {
      const mask = new Uint8Array(d * d);
      let area = 0;
      for (let i = 0; i < d * d; i++) if (up[i * c + k]! > 0.5) (mask[i] = 1), area++;
      layers.push({ mask, colour: PALETTE[k % PALETTE.length]!, area });
    }
    // larger masks first, so a nested one (the cup in the disc) is drawn on top
    img = overlayMasks(img, layers.sort((a, b) => b.area - a.area));
  }
  if (prompt) {
    const s = d / sample.size;
    const at = (v: number) => (v + 0.5) * s - 0.5;
    if (prompt.box) markBox(img, [prompt.box[0] * s, prompt.box[1] * s, (prompt.box[2] + 1) * s - 1, (prompt.box[3] + 1) * s - 1], POSITIVE);
    if (prompt.point) markPoint(img, at(prompt.point.x), at(prompt.point.y), prompt.point.label === 1 ? POSITIVE : NEGATIVE);
  }
  return encodePng(img);
}
