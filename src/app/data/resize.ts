// Resampling of channels-last pixel arrays.
//
// `resizeBilinear` is an ANTIALIASED bilinear resize, the behaviour of PIL's
// `Image.resize(BILINEAR)` and so of torchvision's `Resize` on PIL images (what
// Medical-SAM-Adapter's transforms run): a triangle filter on half-pixel
// centres whose support widens by the downscale factor, so downscaling
// averages every covered source pixel (no aliasing, soft mask edges that
// measure coverage) and upscaling is plain bilinear interpolation.
// The same resampler is used for images and masks; masks are binarised after
// resizing to image size (see `mask-target.ts`).

export type PixelArray = Uint8Array | Uint8ClampedArray | Float32Array;

interface AxisWeights {
  /** first source index of each output index */
  start: Int32Array;
  /** number of taps of each output index */
  count: Int32Array;
  /** `out * maxTaps` normalised weights */
  weights: Float32Array;
  maxTaps: number;
}

function axisWeights(inSize: number, outSize: number): AxisWeights {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale; // triangle support 1, widened when downscaling
  const maxTaps = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Float32Array(outSize * maxTaps);
  for (let i = 0; i < outSize; i++) {
    const center = (i + 0.5) * scale;
    const lo = Math.max(Math.floor(center - support + 0.5), 0);
    const hi = Math.min(Math.floor(center + support + 0.5), inSize);
    let total = 0;
    const n = Math.min(hi - lo, maxTaps);
    for (let k = 0; k < n; k++) {
      const t = Math.abs((lo + k - center + 0.5) / filterScale);
      const w = t < 1 ? 1 - t : 0;
      weights[i * maxTaps + k] = w;
      total += w;
    }
    if (total > 0) for (let k = 0; k < n; k++) weights[i * maxTaps + k]! /= total;
    start[i] = lo;
    count[i] = n;
  }
  return { start, count, weights, maxTaps };
}

/**
 * Resizes `src` (`h * w * c`, channels-last) to `oh * ow * c` float values.
 * Separable: rows first, then columns.
 */
export function resizeBilinear(src: PixelArray, w: number, h: number, c: number, ow: number, oh: number): Float32Array {
  if (src.length !== w * h * c) throw new Error(`resizeBilinear: expected ${w * h * c} values, got ${src.length}`);
  if (ow === w && oh === h) return Float32Array.from(src);
  // horizontal pass: h x ow
  const ax = axisWeights(w, ow);
  const tmp = new Float32Array(h * ow * c);
  for (let y = 0; y < h; y++) {
    const rowIn = y * w * c;
    const rowOut = y * ow * c;
    for (let x = 0; x < ow; x++) {
      const s = ax.start[x]!;
      const n = ax.count[x]!;
      const wo = x * ax.maxTaps;
      for (let ch = 0; ch < c; ch++) {
        let acc = 0;
        for (let k = 0; k < n; k++) acc += ax.weights[wo + k]! * src[rowIn + (s + k) * c + ch]!;
        tmp[rowOut + x * c + ch] = acc;
      }
    }
  }
  // vertical pass: oh x ow
  const ay = axisWeights(h, oh);
  const out = new Float32Array(oh * ow * c);
  const rowLen = ow * c;
  for (let y = 0; y < oh; y++) {
    const s = ay.start[y]!;
    const n = ay.count[y]!;
    const wo = y * ay.maxTaps;
    const o = y * rowLen;
    for (let k = 0; k < n; k++) {
      const wk = ay.weights[wo + k]!;
      if (wk === 0) continue;
      const r = (s + k) * rowLen;
      for (let i = 0; i < rowLen; i++) out[o + i]! += wk * tmp[r + i]!;
    }
  }
  return out;
}
