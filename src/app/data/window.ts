// Grey-level windowing: how DICOM and TIFF values wider than 8 bits (or
// rescaled to Hounsfield units and the like) become the 8-bit pixels the
// models take. One rule for both formats, DICOM's linear VOI window (PS3.3
// C.11.2.1.2): a centre C and a width W map C - W/2 .. C + W/2 onto 0..255.
// The window comes from `--window C,W` if given, else (DICOM) from the file's
// Window Center/Width, else from the image itself: its min and max. It is
// for grey images and for colour samples wider than 8 bits; 8-bit colour is
// taken as it is, and so is 8-bit grey without a window or a rescale.
import { PeftError } from '../../core/errors.js';

export interface ImageWindow {
  /** Window centre, in the image's (rescaled) units. */
  center: number;
  /** Window width, at least 1. */
  width: number;
}

/** Parses the `--window C,W` text (centre, width; width at least 1). */
export function parseWindow(text: string): ImageWindow {
  const m = /^\s*(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)\s*,\s*(\d+(?:\.\d+)?(?:e[-+]?\d+)?)\s*$/i.exec(text);
  const center = m ? Number(m[1]) : NaN;
  const width = m ? Number(m[2]) : NaN;
  if (!Number.isFinite(center) || !Number.isFinite(width)) {
    throw new PeftError(`--window '${text}': expected centre,width (two numbers, e.g. 40,400)`);
  }
  if (width < 1) throw new PeftError(`--window '${text}': the width must be at least 1`);
  return { center, width };
}

/** The window that maps the smallest value to 0 and the largest to 255. */
export function minMaxWindow(values: ArrayLike<number>, count = values.length): ImageWindow {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < count; i++) {
    const v = values[i]!;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return { center: 0.5, width: 1 };
  // DICOM's formula puts C - 0.5 - (W-1)/2 at 0 and C - 0.5 + (W-1)/2 at 255
  return { center: (lo + hi) / 2 + 0.5, width: hi - lo + 1 };
}

/** The window under which 8-bit values 0..255 come out unchanged. */
export const identityWindow: ImageWindow = { center: 128, width: 256 };

/**
 * Maps `values` (already rescaled) through the linear window to 0..255,
 * rounded to the nearest level; `invert` for MONOCHROME1 (white is zero).
 */
export function applyWindow(values: ArrayLike<number>, win: ImageWindow, invert = false): Uint8Array {
  const out = new Uint8Array(values.length);
  const c = win.center - 0.5;
  const w = win.width - 1;
  const lo = c - w / 2;
  const hi = c + w / 2;
  for (let i = 0; i < values.length; i++) {
    const x = values[i]!;
    let y: number;
    if (x <= lo) y = 0;
    else if (x > hi) y = 255;
    else y = Math.round(((x - c) / w + 0.5) * 255); // w > 0 here: with w = 0, lo = hi
    if (Number.isNaN(x)) y = 0;
    out[i] = invert ? 255 - y : y;
  }
  return out;
}
