// Masks and prompts drawn over an 8-bit RGB image: each mask tints its pixels
// with its colour (fill) and paints its boundary opaque (outline), so nested
// masks (a cup inside a disc) stay readable; a point prompt is a dot with a
// dark ring, a box prompt a rectangle. Pure pixel arithmetic, no canvas.
import type { Image8 } from '../data/image-io.js';

export type Rgb = readonly [number, number, number];

/** Colours of prompt marks: a positive click (and a box) green, a negative click red. */
export const PROMPT_COLOURS: { readonly positive: Rgb; readonly negative: Rgb } = { positive: [40, 220, 60], negative: [240, 40, 40] };

export interface MaskLayer {
  /** `width * height`, non-zero inside the mask. */
  mask: Uint8Array;
  colour: Rgb;
}

export interface OverlayOptions {
  /** Opacity of the fill, 0..1 (default 0.35). */
  fill?: number;
  /** Outline width in pixels, inside the mask's edge (default 2; 0: none). */
  outline?: number;
}

/** A new RGB image: `image` (RGB or grey) with the layers drawn in order (a later layer on top). */
export function overlayMasks(image: Image8, layers: readonly MaskLayer[], o: OverlayOptions = {}): Image8 {
  const { width: w, height: h } = image;
  const fill = o.fill ?? 0.35;
  const t = o.outline ?? 2;
  const out = new Uint8Array(w * h * 3);
  for (let i = 0; i < w * h; i++) for (let c = 0; c < 3; c++) out[i * 3 + c] = image.data[i * image.channels + (image.channels === 3 ? c : 0)]!;
  for (const { mask, colour } of layers) {
    if (mask.length !== w * h) throw new Error(`overlayMasks: mask of ${mask.length} pixels for a ${w}x${h} image`);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const i = y * w + x;
        if (!mask[i]) continue;
        const a = t > 0 && nearOutside(mask, w, h, x, y, t) ? 1 : fill;
        for (let c = 0; c < 3; c++) out[i * 3 + c] = Math.round(out[i * 3 + c]! * (1 - a) + colour[c]! * a);
      }
    }
  }
  return { width: w, height: h, channels: 3, data: out };
}

/**
 * Whether (x, y), inside the mask, lies on its outline `t` pixels wide: a pixel
 * outside the mask within the square of half-side t - 1 around it, or at
 * distance t straight along a row or column. The image's border is not an edge.
 */
function nearOutside(mask: Uint8Array, w: number, h: number, x: number, y: number, t: number): boolean {
  for (let dy = 1 - t; dy < t; dy++) {
    for (let dx = 1 - t; dx < t; dx++) {
      const u = x + dx;
      const v = y + dy;
      if (u >= 0 && v >= 0 && u < w && v < h && !mask[v * w + u]) return true;
    }
  }
  for (const [dx, dy] of [[t, 0], [-t, 0], [0, t], [0, -t]] as const) {
    const u = x + dx;
    const v = y + dy;
    if (u >= 0 && v >= 0 && u < w && v < h && !mask[v * w + u]) return true;
  }
  return false;
}

function put(img: Image8, x: number, y: number, colour: Rgb): void {
  if (x < 0 || y < 0 || x >= img.width || y >= img.height) return;
  const i = (y * img.width + x) * 3;
  img.data[i] = colour[0];
  img.data[i + 1] = colour[1];
  img.data[i + 2] = colour[2];
}

/** Draws a dot of `radius` pixels at (x, y) with a one-pixel dark ring, in place (RGB images). */
export function markPoint(img: Image8, x: number, y: number, colour: Rgb, radius = 4): void {
  const cx = Math.round(x);
  const cy = Math.round(y);
  for (let dy = -radius - 1; dy <= radius + 1; dy++) {
    for (let dx = -radius - 1; dx <= radius + 1; dx++) {
      const d = Math.hypot(dx, dy);
      if (d <= radius) put(img, cx + dx, cy + dy, colour);
      else if (d <= radius + 1.2) put(img, cx + dx, cy + dy, [20, 20, 20]);
    }
  }
}

/** Draws the outline of the box [x0, y0, x1, y1] (inclusive pixel edges), `width` pixels wide, in place (RGB images). */
export function markBox(img: Image8, box: readonly [number, number, number, number], colour: Rgb, width = 2): void {
  const [x0, y0, x1, y1] = box.map(Math.round) as [number, number, number, number];
  for (let k = 0; k < width; k++) {
    for (let x = x0; x <= x1; x++) {
      put(img, x, y0 + k, colour);
      put(img, x, y1 - k, colour);
    }
    for (let y = y0; y <= y1; y++) {
      put(img, x0 + k, y, colour);
      put(img, x1 - k, y, colour);
    }
  }
}
