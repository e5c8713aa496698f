// Image format sniffing and header parsing, done BEFORE any decoding so that a
// hostile or broken file is refused with a PeftError naming it, and no buffer
// larger than the file's size can justify is ever allocated. DICOM and TIFF
// headers are read by their own modules (`dicom.ts`, `tiff.ts`).
import { PeftError } from '../../core/errors.js';
import { readDicomHeader } from './dicom.js';
import { checkDecodedSize, imageLimits } from './image-limits.js';
import { pngRawSize } from './png.js';
import { readTiffHeader } from './tiff.js';

export { checkDecodedSize, checkDimensions, imageLimits, SampleBudget } from './image-limits.js';

export type ImageFormat = 'png' | 'jpeg' | 'bmp' | 'dicom' | 'tiff';

export interface ImageHeader {
  format: ImageFormat;
  width: number;
  height: number;
  /** Frames (DICOM) or pages (TIFF) the file holds; 1 for the other formats. `width`/`height` are the first one's. */
  frames: number;
  /** Channels the decoder produces from the file (before any conversion to RGB or grey): 1 to 4. */
  channels: number;
  /** Bytes of one sample as decoded: 2 for 16-bit PNG, DICOM and TIFF, else 1. */
  bytesPerSample: number;
  /** `width * height * channels * bytesPerSample`: what one image (frame, page) decodes to, checked against `imageLimits.maxImageBytes`. */
  decodedBytes: number;
}

/** What the readers take, for messages. */
export const imageFormatNames = 'PNG, JPEG, BMP, DICOM or TIFF';

/** The format from the file's magic bytes (never its name), or undefined. */
export function sniffFormat(bytes: Uint8Array): ImageFormat | undefined {
  if (bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47 && bytes[4] === 0x0d && bytes[5] === 0x0a && bytes[6] === 0x1a && bytes[7] === 0x0a) return 'png';
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  if (bytes.length >= 2 && bytes[0] === 0x42 && bytes[1] === 0x4d) return 'bmp';
  // DICOM Part 10: a 128-byte preamble, then "DICM"
  if (bytes.length >= 132 && bytes[128] === 0x44 && bytes[129] === 0x49 && bytes[130] === 0x43 && bytes[131] === 0x4d) return 'dicom';
  // TIFF: "II" + 42 little endian or "MM" + 42 big endian (43: BigTIFF, refused by the reader by name)
  if (bytes.length >= 4 && ((bytes[0] === 0x49 && bytes[1] === 0x49 && (bytes[2] === 42 || bytes[2] === 43) && bytes[3] === 0) || (bytes[0] === 0x4d && bytes[1] === 0x4d && bytes[2] === 0 && (bytes[3] === 42 || bytes[3] === 43)))) return 'tiff';
  return undefined;
}

export function describeStart(bytes: Uint8Array): string {
  const head = Array.from(bytes.subarray(0, 8));
  const printable = head.every((b) => b === 9 || b === 10 || b === 13 || (b >= 32 && b < 127));
  if (printable && head.length) return `it starts with text ${JSON.stringify(String.fromCharCode(...head))}`;
  return head.length ? `it starts with bytes ${head.map((b) => b.toString(16).padStart(2, '0')).join(' ')}` : 'it is empty';
}

function be32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}
function be16(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}
function le32s(b: Uint8Array, o: number): number {
  return b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24);
}

/**
 * Reads the dimensions, frame count and decoded size from the header of an
 * image and checks them against the limits (image-limits.ts) and against
 * what a file of `fileBytes` bytes can hold, before anything is decoded.
 * `bytes` may be the file's first bytes only (`fileBytes` then says how long
 * the whole is) for PNG, JPEG and BMP; a header that lies past them is refused
 * as truncated.
 */
export function readImageHeader(bytes: Uint8Array, file: string, fileBytes = bytes.length): ImageHeader {
  const format = sniffFormat(bytes);
  if (!format) throw new PeftError(`${file}: not a ${imageFormatNames} image (${describeStart(bytes)})`);
  if (format === 'dicom') {
    const h = readDicomHeader(bytes, file);
    return described(file, format, h.width, h.height, h.frames, h.samplesPerPixel, h.bitsAllocated / 8);
  }
  if (format === 'tiff') {
    const h = readTiffHeader(bytes, file);
    return described(file, format, h.width, h.height, h.frames, h.channels, h.bytesPerSample);
  }
  if (format === 'png') {
    if (bytes.length < 33 || String.fromCharCode(...bytes.subarray(12, 16)) !== 'IHDR') {
      throw new PeftError(`${file}: truncated or corrupt PNG (no IHDR header)`);
    }
    const width = be32(bytes, 16);
    const height = be32(bytes, 20);
    const depth = bytes[24]!;
    const colorType = bytes[25]!;
    const stored = pngChannels[colorType];
    if (stored === undefined || !pngDepths[colorType]!.includes(depth)) throw new PeftError(`${file}: corrupt PNG (colour type ${colorType} with bit depth ${depth})`);
    // a palette expands to RGB, or RGBA with transparency
    const header = described(file, format, width, height, 1, colorType === 3 ? 4 : stored, depth === 16 ? 2 : 1);
    const raw = pngRawSize(width, height, stored * depth, bytes[28] === 1);
    if (raw > imageLimits.deflateMaxRatio * fileBytes + 1024) {
      throw new PeftError(`${file}: truncated PNG (${width}x${height} needs ${raw} bytes of image data, ${fileBytes} bytes of file cannot hold them)`);
    }
    return header;
  }
  if (format === 'bmp') {
    if (bytes.length < 26) throw new PeftError(`${file}: truncated BMP header`);
    const dibSize = le32s(bytes, 14);
    if (dibSize === 12) return described(file, format, bytes[18]! | (bytes[19]! << 8), bytes[20]! | (bytes[21]! << 8), 1, 3, 1);
    return described(file, format, le32s(bytes, 18), Math.abs(le32s(bytes, 22)), 1, 3, 1);
  }
  const { width, height } = jpegFrameSize(bytes, file);
  // decoded as RGB whatever its components
  const header = described(file, format, width, height, 1, 3, 1);
  const justified = imageLimits.jpegFreePixels + imageLimits.jpegPixelsPerByte * fileBytes;
  if (width * height > justified) {
    throw new PeftError(`${file}: JPEG declares ${width}x${height} pixels, more than its ${fileBytes} bytes can hold`);
  }
  return header;
}

const pngChannels: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
const pngDepths: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };

/** A header, its dimensions and decoded size checked (`checkDecodedSize`). */
function described(file: string, format: ImageFormat, width: number, height: number, frames: number, channels: number, bytesPerSample: number): ImageHeader {
  return { format, width, height, frames, channels, bytesPerSample, decodedBytes: checkDecodedSize(file, width, height, channels, bytesPerSample) };
}

/** Scans JPEG markers up to the frame header (SOFn) and returns its size. */
function jpegFrameSize(b: Uint8Array, file: string): { width: number; height: number } {
  let o = 2;
  while (o < b.length) {
    if (b[o] !== 0xff) throw new PeftError(`${file}: corrupt JPEG (bad marker at byte ${o})`);
    while (o < b.length && b[o] === 0xff) o++; // fill bytes
    if (o >= b.length) break;
    const marker = b[o]!;
    o++;
    if (marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) continue;
    if (marker === 0xd9 || marker === 0xda) break; // EOI or scan before any frame
    if (o + 2 > b.length) break;
    const len = be16(b, o);
    if (len < 2) throw new PeftError(`${file}: corrupt JPEG (segment length ${len})`);
    const isSof = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (isSof) {
      if (o + 7 > b.length) break;
      if (marker !== 0xc0 && marker !== 0xc1 && marker !== 0xc2) {
        throw new PeftError(`${file}: unsupported JPEG coding (SOF${marker - 0xc0}); only baseline and progressive Huffman JPEGs are supported`);
      }
      const height = be16(b, o + 3);
      const width = be16(b, o + 5);
      if (height === 0) throw new PeftError(`${file}: unsupported JPEG (height defined by a DNL marker)`);
      return { width, height };
    }
    o += len;
  }
  throw new PeftError(`${file}: truncated or corrupt JPEG (no frame header)`);
}
