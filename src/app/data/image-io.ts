// Reading and writing images: JPEG (jpeg-js), PNG (fast-png, behind a strict
// pre-pass), BMP (own strict decoder), DICOM (dicom-parser) and TIFF (tiff,
// behind a strict pre-pass), to RGB or grey 8-bit pixels. The format comes
// from the magic bytes, never the file name. Every failure is a PeftError
// naming the file; sizes are checked before anything is allocated. DICOM and
// TIFF take `ReadImageOptions`: the grey-level window and the frame (page).
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { checkRegularFile, readRegularFile } from '../../core/io/read-regular-file.js';
import jpeg from 'jpeg-js';
import { encode as fastPngEncode } from 'fast-png';
import { PeftError, errorReason } from '../../core/errors.js';
import { decodeBmp } from './bmp.js';
import { chooseFrame, decodeDicom, type FrameOptions } from './dicom.js';
import { decodePng, type DecodedPixels } from './png.js';
import { imageLimits, readImageHeader, sniffFormat, type ImageHeader } from './image-header.js';
import { decodeTiff } from './tiff.js';

/**
 * How DICOM and TIFF files are turned into 8-bit pixels (other formats ignore
 * it): `window` ({center, width}, e.g. from `parseWindow('40,400')`) wins over
 * the file's window and the min/max default; `frame` (1-based) picks a frame
 * of a multi-frame DICOM or a page of a multi-page TIFF, which is required
 * when there is more than one.
 */
export type ReadImageOptions = FrameOptions;

/**
 * File name extensions a folder's images may have (a loader looking for
 * `<name>.<ext>` tries them in this order); what a file holds is told by its
 * bytes all the same.
 */
export const imageFileExtensions: readonly string[] = ['.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.dcm', '.dicom'];

export type ColorMode = 'rgb' | 'grey';

export interface Image8 {
  width: number;
  height: number;
  /** 3 for 'rgb', 1 for 'grey'. */
  channels: 1 | 3;
  /** `height * width * channels`, row-major, channels-last. */
  data: Uint8Array;
}

/** PIL's ITU-R 601-2 luma transform, as `Image.convert('L')`. */
function toGrey(src: Uint8Array, channels: number, pixels: number): Uint8Array {
  const out = new Uint8Array(pixels);
  for (let i = 0; i < pixels; i++) {
    const s = i * channels;
    out[i] = Math.floor((src[s]! * 19595 + src[s + 1]! * 38470 + src[s + 2]! * 7471 + 0x8000) / 65536);
  }
  return out;
}

function convert(px: DecodedPixels, mode: ColorMode): Image8 {
  const { width, height, channels, data } = px;
  const n = width * height;
  if (mode === 'grey') {
    if (channels === 1) return { width, height, channels: 1, data };
    if (channels === 2) {
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) out[i] = data[i * 2]!;
      return { width, height, channels: 1, data: out };
    }
    return { width, height, channels: 1, data: toGrey(data, channels, n) };
  }
  if (channels === 3) return { width, height, channels: 3, data };
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    if (channels <= 2) {
      const v = data[i * channels]!;
      out[i * 3] = v;
      out[i * 3 + 1] = v;
      out[i * 3 + 2] = v;
    } else {
      out[i * 3] = data[i * channels]!;
      out[i * 3 + 1] = data[i * channels + 1]!;
      out[i * 3 + 2] = data[i * channels + 2]!;
    }
  }
  return { width, height, channels: 3, data: out }; // alpha dropped, as PIL's convert('RGB')
}

/**
 * jpeg-js's own accounting of what it allocates per pixel, at most 4
 * components: 256-byte coefficient blocks per 64 pixels of each (4 bytes a
 * pixel), a byte a pixel for each component's lines and for its output, and
 * the 3-byte RGB result.
 */
const JPEG_BYTES_PER_PIXEL = 4 * (4 + 1 + 1) + 3;

function decodeJpeg(bytes: Uint8Array, header: ImageHeader, file: string): DecodedPixels {
  // the header was checked against the limits and the file's size (readImageHeader); the decoder
  // refuses any frame larger than it, and stops at what decoding that frame can need
  const pixels = header.width * header.height;
  try {
    const img = jpeg.decode(bytes, {
      useTArray: true,
      formatAsRGBA: false,
      tolerantDecoding: false,
      maxResolutionInMP: pixels / 1e6,
      maxMemoryUsageInMB: Math.ceil((pixels * JPEG_BYTES_PER_PIXEL) / (1024 * 1024)) + 16,
    });
    if (img.width !== header.width || img.height !== header.height || img.data.length !== pixels * 3) {
      throw new Error(`decoded ${img.width}x${img.height}, header says ${header.width}x${header.height}`);
    }
    return { width: img.width, height: img.height, channels: 3, data: img.data };
  } catch (err) {
    if (err instanceof PeftError) throw err;
    throw new PeftError(`${file}: corrupt or truncated JPEG (${(err as Error).message ?? String(err)})`);
  }
}

/** Decodes an image held in memory. `file` names it in errors. */
export function decodeImage(bytes: Uint8Array, file: string, mode: ColorMode = 'rgb', options: ReadImageOptions = {}): Image8 {
  // DICOM and TIFF readers check their own headers first (parsing them once, not twice)
  const format = sniffFormat(bytes);
  if (format === 'dicom') return convert(decodeDicom(bytes, file, options), mode);
  if (format === 'tiff') return convert(decodeTiff(bytes, file, options), mode);
  const header = readImageHeader(bytes, file);
  let px: DecodedPixels;
  if (header.format === 'png') px = decodePng(bytes, file);
  else if (header.format === 'jpeg') px = decodeJpeg(bytes, header, file);
  else px = { ...decodeBmp(bytes, file), channels: 3 };
  return convert(px, mode);
}

/** Reads a whole file, refusing directories, missing files and absurd sizes with a PeftError. */
export async function readFileChecked(path: string, maxBytes: number = imageLimits.maxFileBytes): Promise<Uint8Array> {
  let size: number;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new PeftError(`${path}: not a regular file`);
    size = st.size;
  } catch (err) {
    if (err instanceof PeftError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new PeftError(code === 'ENOENT' ? `${path}: no such file` : `${path}: cannot read (${code ?? (err as Error).message})`);
  }
  if (size > maxBytes) throw new PeftError(`${path}: file of ${size} bytes exceeds the limit of ${maxBytes} bytes`);
  try {
    const buf = readRegularFile(path, 'image', maxBytes);
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  } catch (err) {
    throw new PeftError(`${path}: cannot read (${errorReason(err)})`);
  }
}

/** Bytes read for a header: PNG and BMP headers lie in the first few, a JPEG's frame header after its EXIF and ICC segments (usually well within 64 KiB). */
const HEADER_PREFIX_BYTES = 64 * 1024;

/** The first `n` bytes of the regular file `path` (fewer when it is shorter), and its size. */
function readPrefix(path: string, n: number): { bytes: Uint8Array; size: number } {
  checkRegularFile(path, 'image', imageLimits.maxFileBytes);
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    throw new PeftError(`${path}: cannot read (${errorReason(err)})`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new PeftError(`${path}: not a regular file`);
    const buf = new Uint8Array(Math.min(n, st.size));
    let done = 0;
    while (done < buf.length) {
      const got = readSync(fd, buf, done, buf.length - done, done);
      if (got === 0) break;
      done += got;
    }
    return { bytes: buf.subarray(0, done), size: st.size };
  } catch (err) {
    if (err instanceof PeftError) throw err;
    throw new PeftError(`${path}: cannot read (${errorReason(err)})`);
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads and checks an image file's header without decoding any pixel: its
 * format, dimensions, what it decodes to against the per-image limit, its
 * declared sizes against the file's size, and (with `options.frame`, or
 * without one for a single-frame file) the frame to read. PNG, BMP and JPEG
 * need only the file's first 64 KiB (all of it when a JPEG's frame header
 * lies further); DICOM and TIFF, whose headers may lie anywhere, are read whole.
 */
export async function readImageFileHeader(path: string, options: ReadImageOptions = {}): Promise<ImageHeader> {
  const { bytes, size } = readPrefix(path, HEADER_PREFIX_BYTES);
  const format = sniffFormat(bytes);
  let header: ImageHeader;
  if (format === 'dicom' || format === 'tiff' || bytes.length === size) {
    header = readImageHeader(bytes.length === size ? bytes : await readFileChecked(path), path);
  } else {
    try {
      header = readImageHeader(bytes, path, size);
    } catch (err) {
      // a JPEG whose frame header lies past the prefix: the whole file answers
      if (!(err instanceof PeftError) || format !== 'jpeg') throw err;
      header = readImageHeader(await readFileChecked(path), path);
    }
  }
  chooseFrame(path, header.frames, options.frame, header.format === 'tiff' ? 'page' : 'frame');
  return header;
}

/** Reads and decodes an image file (PNG, JPEG, BMP, DICOM or TIFF, told apart by their bytes). */
export async function readImage(path: string, mode: ColorMode = 'rgb', options: ReadImageOptions = {}): Promise<Image8> {
  return decodeImage(await readFileChecked(path), path, mode, options);
}

/** Encodes 8-bit grey or RGB pixels as PNG. */
export function encodePng(img: Image8): Uint8Array {
  return fastPngEncode({ width: img.width, height: img.height, data: img.data, channels: img.channels, depth: 8 });
}

/** Encodes 8-bit RGB (or grey) pixels as a baseline JPEG (deterministic). */
export function encodeJpeg(img: Image8, quality = 92): Uint8Array {
  const n = img.width * img.height;
  const rgba = new Uint8Array(n * 4);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) rgba[i * 4 + c] = img.data[i * img.channels + (img.channels === 3 ? c : 0)]!;
    rgba[i * 4 + 3] = 255;
  }
  const out = jpeg.encode({ width: img.width, height: img.height, data: rgba }, quality).data;
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}
