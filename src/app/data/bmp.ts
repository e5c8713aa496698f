// A strict BMP decoder (Windows bitmaps: 1/4/8-bit palette, 16/24/32-bit,
// BI_RGB and BI_BITFIELDS, bottom-up or top-down). RLE compression is refused.
// Every size is checked against the file before any pixel buffer is allocated.
import { PeftError } from '../../core/errors.js';
import { checkDimensions } from './image-limits.js';

export interface DecodedRgb {
  width: number;
  height: number;
  /** `height * width * 3`, row-major RGB. */
  data: Uint8Array;
}

function u16(b: Uint8Array, o: number): number {
  return b[o]! | (b[o + 1]! << 8);
}
function u32(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}
function i32(b: Uint8Array, o: number): number {
  return b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24);
}

/** Shift and width of a channel bit mask, to scale its value to 0..255. */
function maskInfo(mask: number): { shift: number; max: number } {
  if (mask === 0) return { shift: 0, max: 0 };
  let shift = 0;
  while (((mask >>> shift) & 1) === 0) shift++;
  return { shift, max: mask >>> shift };
}

export function decodeBmp(b: Uint8Array, file: string): DecodedRgb {
  const bad = (why: string): never => {
    throw new PeftError(`${file}: ${why}`);
  };
  if (b.length < 26 || b[0] !== 0x42 || b[1] !== 0x4d) bad('truncated or corrupt BMP header');
  const dataOffset = u32(b, 10);
  const dib = u32(b, 14);
  if (![12, 40, 52, 56, 64, 108, 124].includes(dib)) bad(`unsupported BMP header size ${dib}`);
  if (b.length < 14 + dib) bad('truncated BMP header');
  let width: number;
  let heightSigned: number;
  let bpp: number;
  let compression = 0;
  let paletteCount = 0;
  if (dib === 12) {
    width = u16(b, 18);
    heightSigned = u16(b, 20);
    bpp = u16(b, 24);
  } else {
    width = i32(b, 18);
    heightSigned = i32(b, 22);
    bpp = u16(b, 28);
    compression = u32(b, 30);
    paletteCount = u32(b, 46);
  }
  const topDown = heightSigned < 0;
  const height = Math.abs(heightSigned);
  checkDimensions(file, width, height);
  if (![1, 4, 8, 16, 24, 32].includes(bpp)) bad(`unsupported BMP bit depth ${bpp}`);
  if (compression === 1 || compression === 2) bad('RLE-compressed BMP is not supported');
  if (compression !== 0 && compression !== 3 && compression !== 6) bad(`unsupported BMP compression ${compression}`);

  // channel masks for 16/32-bit
  let masks: [number, number, number] | undefined;
  if (bpp === 16 || bpp === 32) {
    if (compression === 3 || compression === 6) {
      const at = dib >= 52 ? 54 : 14 + dib; // masks inside the V2+ header, or right after the 40-byte one
      if (b.length < at + 12) bad('truncated BMP bit masks');
      masks = [u32(b, at), u32(b, at + 4), u32(b, at + 8)];
    } else {
      masks = bpp === 16 ? [0x7c00, 0x03e0, 0x001f] : [0x00ff0000, 0x0000ff00, 0x000000ff];
    }
  } else if (compression !== 0) {
    bad(`BMP compression ${compression} is invalid with ${bpp} bits per pixel`);
  }

  // palette
  let palette: Uint8Array | undefined;
  if (bpp <= 8) {
    const entries = paletteCount || 1 << bpp;
    if (entries > 1 << bpp) bad(`BMP palette of ${entries} colours for ${bpp} bits per pixel`);
    const entrySize = dib === 12 ? 3 : 4;
    const start = 14 + dib + (compression === 3 && dib === 40 ? 12 : 0);
    if (start + entries * entrySize > b.length) bad('truncated BMP palette');
    palette = new Uint8Array(256 * 3);
    for (let i = 0; i < entries; i++) {
      palette[i * 3] = b[start + i * entrySize + 2]!;
      palette[i * 3 + 1] = b[start + i * entrySize + 1]!;
      palette[i * 3 + 2] = b[start + i * entrySize]!;
    }
  }

  const stride = Math.floor((bpp * width + 31) / 32) * 4;
  if (dataOffset < 14 + dib || dataOffset + stride * height > b.length) {
    bad(`truncated BMP (pixel data needs ${stride * height} bytes from offset ${dataOffset}, the file has ${b.length} bytes)`);
  }

  const out = new Uint8Array(width * height * 3);
  const info = masks?.map(maskInfo);
  for (let y = 0; y < height; y++) {
    const row = dataOffset + (topDown ? y : height - 1 - y) * stride;
    const o = y * width * 3;
    for (let x = 0; x < width; x++) {
      const p = o + x * 3;
      if (bpp === 24) {
        const s = row + x * 3;
        out[p] = b[s + 2]!;
        out[p + 1] = b[s + 1]!;
        out[p + 2] = b[s]!;
      } else if (bpp === 16 || bpp === 32) {
        const v = bpp === 16 ? u16(b, row + x * 2) : u32(b, row + x * 4);
        for (let c = 0; c < 3; c++) {
          const { shift, max } = info![c]!;
          out[p + c] = max ? Math.round((((v & masks![c]!) >>> shift) * 255) / max) : 0;
        }
      } else {
        const perByte = 8 / bpp;
        const byte = b[row + Math.floor(x / perByte)]!;
        const idx = (byte >> (8 - bpp * ((x % perByte) + 1))) & ((1 << bpp) - 1);
        out[p] = palette![idx * 3]!;
        out[p + 1] = palette![idx * 3 + 1]!;
        out[p + 2] = palette![idx * 3 + 2]!;
      }
    }
  }
  return { width, height, data: out };
}

/** Encodes RGB pixels as a 24-bit bottom-up BMP (for tests and tools). */
export function encodeBmp(img: DecodedRgb): Uint8Array {
  const stride = Math.floor((24 * img.width + 31) / 32) * 4;
  const size = 54 + stride * img.height;
  const b = new Uint8Array(size);
  const dv = new DataView(b.buffer);
  b[0] = 0x42;
  b[1] = 0x4d;
  dv.setUint32(2, size, true);
  dv.setUint32(10, 54, true);
  dv.setUint32(14, 40, true);
  dv.setInt32(18, img.width, true);
  dv.setInt32(22, img.height, true);
  dv.setUint16(26, 1, true);
  dv.setUint16(28, 24, true);
  dv.setUint32(34, stride * img.height, true);
  for (let y = 0; y < img.height; y++) {
    const row = 54 + (img.height - 1 - y) * stride;
    for (let x = 0; x < img.width; x++) {
      const s = (y * img.width + x) * 3;
      b[row + x * 3] = img.data[s + 2]!;
      b[row + x * 3 + 1] = img.data[s + 1]!;
      b[row + x * 3 + 2] = img.data[s]!;
    }
  }
  return b;
}
