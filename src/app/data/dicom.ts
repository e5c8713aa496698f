// DICOM Part 10 files (the `DICM` mark at byte 128) to 8-bit pixels, through
// dicom-parser (cornerstonejs), which walks the data set and tells where each
// element lies; the pixel values are read here. Supported: native (not
// compressed) pixel data in implicit or explicit VR little endian, deflated
// explicit VR little endian and explicit VR big endian; MONOCHROME1/2, RGB
// (both planar configurations) and YBR_FULL; 8 or 16 bits allocated, signed
// or unsigned, any Bits Stored and High Bit; Rescale Slope/Intercept; the VOI
// window from `--window`, else the file, else the image's min/max (see
// `window.ts`). Everything else is one PeftError naming the file and what it
// holds: compressed transfer syntaxes by UID and name, a multi-frame file
// without a frame chosen, sizes beyond `imageLimits`. Every size is checked
// against the header and the bytes present before a pixel is read.
import { inflateRawSync } from 'node:zlib';
import dicomParser from 'dicom-parser';
import { PeftError } from '../../core/errors.js';
import { checkDecodedSize, checkDimensions, imageLimits } from './image-limits.js';
import type { DecodedPixels } from './png.js';
import { applyWindow, identityWindow, minMaxWindow, type ImageWindow } from './window.js';

/** What decoding a DICOM or TIFF file may be told. */
export interface FrameOptions {
  /** Window centre and width; wins over the file's. */
  window?: ImageWindow;
  /** 1-based frame of a multi-frame file. */
  frame?: number;
}

const implicitLE = '1.2.840.10008.1.2';
const explicitLE = '1.2.840.10008.1.2.1';
const deflatedLE = '1.2.840.10008.1.2.1.99';
const explicitBE = '1.2.840.10008.1.2.2';
const readable = new Set([implicitLE, explicitLE, deflatedLE, explicitBE]);

/** Names of the transfer syntaxes (PS3.6 annex A) a file may name, for the messages. */
const transferSyntaxNames: Record<string, string> = {
  [implicitLE]: 'Implicit VR Little Endian',
  [explicitLE]: 'Explicit VR Little Endian',
  [deflatedLE]: 'Deflated Explicit VR Little Endian',
  [explicitBE]: 'Explicit VR Big Endian',
  '1.2.840.10008.1.2.4.50': 'JPEG Baseline (Process 1)',
  '1.2.840.10008.1.2.4.51': 'JPEG Extended (Process 2 & 4)',
  '1.2.840.10008.1.2.4.57': 'JPEG Lossless, Non-Hierarchical (Process 14)',
  '1.2.840.10008.1.2.4.70': 'JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection Value 1])',
  '1.2.840.10008.1.2.4.80': 'JPEG-LS Lossless',
  '1.2.840.10008.1.2.4.81': 'JPEG-LS Lossy (Near-Lossless)',
  '1.2.840.10008.1.2.4.90': 'JPEG 2000 Image Compression (Lossless Only)',
  '1.2.840.10008.1.2.4.91': 'JPEG 2000 Image Compression',
  '1.2.840.10008.1.2.4.92': 'JPEG 2000 Part 2 Multi-component Image Compression (Lossless Only)',
  '1.2.840.10008.1.2.4.93': 'JPEG 2000 Part 2 Multi-component Image Compression',
  '1.2.840.10008.1.2.4.100': 'MPEG2 Main Profile / Main Level',
  '1.2.840.10008.1.2.4.101': 'MPEG2 Main Profile / High Level',
  '1.2.840.10008.1.2.4.102': 'MPEG-4 AVC/H.264 High Profile / Level 4.1',
  '1.2.840.10008.1.2.4.103': 'MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1',
  '1.2.840.10008.1.2.4.110': 'JPEG XL Lossless',
  '1.2.840.10008.1.2.4.111': 'JPEG XL JPEG Recompression',
  '1.2.840.10008.1.2.4.112': 'JPEG XL',
  '1.2.840.10008.1.2.4.201': 'High-Throughput JPEG 2000 Image Compression (Lossless Only)',
  '1.2.840.10008.1.2.4.202': 'High-Throughput JPEG 2000 with RPCL Options Image Compression (Lossless Only)',
  '1.2.840.10008.1.2.4.203': 'High-Throughput JPEG 2000 Image Compression',
  '1.2.840.10008.1.2.5': 'RLE Lossless',
};

/** `UID (name)` for messages. */
export function describeTransferSyntax(uid: string): string {
  return `${uid} (${transferSyntaxNames[uid] ?? 'not a standard transfer syntax'})`;
}

type DataSet = ReturnType<typeof dicomParser.parseDicom>;

/** A DICOM file's image description, every field checked against the limits and the bytes present. */
export interface DicomHeader {
  width: number;
  height: number;
  frames: number;
  transferSyntax: string;
  photometric: string;
  samplesPerPixel: 1 | 3;
  planar: boolean;
  bitsAllocated: 8 | 16;
  bitsStored: number;
  highBit: number;
  signed: boolean;
  slope: number;
  intercept: number;
  /** The file's first Window Center/Width pair, when it has one. */
  window?: ImageWindow;
  /** The parsed data set (its `byteArray` is the inflated one for deflated files). */
  dataSet: DataSet;
  /** Offset of the native pixel data in `dataSet.byteArray`. */
  pixelOffset: number;
}

/** Bytes of one frame. */
const frameBytes = (h: DicomHeader) => h.width * h.height * h.samplesPerPixel * (h.bitsAllocated / 8);

function parse(bytes: Uint8Array, file: string): DataSet {
  try {
    return dicomParser.parseDicom(bytes, {
      // node's zlib without a cap would let a small deflated file inflate to any size: at most
      // what one sample's files may decode to
      inflater: (arr: Uint8Array, position: number) => {
        const inflated = inflateRawSync(arr.subarray(position), { maxOutputLength: imageLimits.maxSampleBytes });
        const full = new Uint8Array(position + inflated.length);
        full.set(arr.subarray(0, position), 0);
        full.set(inflated, position);
        return full;
      },
    } as Parameters<typeof dicomParser.parseDicom>[1]);
  } catch (err) {
    // dicom-parser throws strings as well as Errors
    const why = typeof err === 'string' ? err : ((err as Error)?.message ?? String(err));
    throw new PeftError(`${file}: corrupt or truncated DICOM (${why.replace(/^dicomParser\.\w+: /, '').slice(0, 200)})`);
  }
}

/** Reads and checks the header of a DICOM file; no pixel is read. */
export function readDicomHeader(bytes: Uint8Array, file: string): DicomHeader {
  const ds = parse(bytes, file);
  const bad = (why: string): never => {
    throw new PeftError(`${file}: ${why}`);
  };
  const str = (tag: string) => ds.string(tag)?.replace(/\0/g, '').trim();
  const transferSyntax = str('x00020010') ?? bad('DICOM file without a Transfer Syntax UID (0002,0010)');
  if (!readable.has(transferSyntax)) {
    bad(`DICOM transfer syntax ${describeTransferSyntax(transferSyntax)} is not supported: only uncompressed pixel data is read (implicit or explicit VR little endian, deflated, big endian); convert the file first, e.g. with dcmdjpeg or gdcmconv --raw`);
  }
  const us = (tag: string, name: string): number | undefined => {
    const el = ds.elements[tag];
    if (!el) return undefined;
    if (el.length < 2) bad(`corrupt DICOM (${name} ${tag.slice(1, 5)},${tag.slice(5)} has ${el.length} bytes)`);
    return ds.uint16(tag);
  };
  const height = us('x00280010', 'Rows') ?? bad('DICOM file without an image (no Rows (0028,0010))');
  const width = us('x00280011', 'Columns') ?? bad('DICOM file without an image (no Columns (0028,0011))');
  checkDimensions(file, width, height);

  const framesText = str('x00280008');
  const frames = framesText === undefined || framesText === '' ? 1 : Number(framesText);
  if (!Number.isInteger(frames) || frames < 1) bad(`corrupt DICOM (Number of Frames '${framesText}')`);
  if (frames > imageLimits.maxFrames) bad(`DICOM declares ${frames} frames, more than the limit of ${imageLimits.maxFrames}`);

  const spp = us('x00280002', 'Samples per Pixel') ?? 1;
  const photometric = str('x00280004') ?? (spp === 3 ? 'RGB' : 'MONOCHROME2');
  const mono = photometric === 'MONOCHROME1' || photometric === 'MONOCHROME2';
  if (!(mono && spp === 1) && !((photometric === 'RGB' || photometric === 'YBR_FULL') && spp === 3)) {
    bad(`DICOM photometric interpretation ${photometric} with ${spp} samples per pixel is not supported (MONOCHROME1, MONOCHROME2, RGB or YBR_FULL)`);
  }
  const bitsAllocated = us('x00280100', 'Bits Allocated') ?? bad('corrupt DICOM (no Bits Allocated (0028,0100))');
  if (bitsAllocated !== 8 && bitsAllocated !== 16) bad(`DICOM with ${bitsAllocated} bits allocated per sample is not supported (8 or 16)`);
  const bitsStored = us('x00280101', 'Bits Stored') ?? bitsAllocated;
  const highBit = us('x00280102', 'High Bit') ?? bitsStored - 1;
  if (bitsStored < 1 || bitsStored > bitsAllocated || highBit < bitsStored - 1 || highBit >= bitsAllocated) {
    bad(`corrupt DICOM (Bits Stored ${bitsStored} and High Bit ${highBit} do not fit ${bitsAllocated} bits allocated)`);
  }
  if (spp === 3 && bitsAllocated !== 8 && photometric === 'YBR_FULL') bad('DICOM YBR_FULL colour is read at 8 bits only');
  const signed = (us('x00280103', 'Pixel Representation') ?? 0) === 1;

  const num = (tag: string, name: string, fallback: number): number => {
    const t = str(tag);
    if (t === undefined || t === '') return fallback;
    const v = Number(t.split('\\')[0]);
    if (!Number.isFinite(v)) bad(`corrupt DICOM (${name} '${t}')`);
    return v;
  };
  const slope = num('x00281053', 'Rescale Slope', 1);
  const intercept = num('x00281052', 'Rescale Intercept', 0);
  let window: ImageWindow | undefined;
  if (str('x00281050') && str('x00281051')) {
    const center = num('x00281050', 'Window Center', 0);
    const w = num('x00281051', 'Window Width', 1);
    if (w >= 1) window = { center, width: w };
  }

  const px = ds.elements['x7fe00010'] ?? bad('DICOM file without pixel data (7FE0,0010)');
  if (px.encapsulatedPixelData || px.hadUndefinedLength) bad(`corrupt DICOM (encapsulated pixel data under ${describeTransferSyntax(transferSyntax)})`);
  const header: DicomHeader = {
    width, height, frames, transferSyntax, photometric, samplesPerPixel: spp as 1 | 3,
    planar: spp === 3 && (us('x00280006', 'Planar Configuration') ?? 0) === 1,
    bitsAllocated: bitsAllocated as 8 | 16, bitsStored, highBit, signed, slope, intercept, window,
    dataSet: ds, pixelOffset: px.dataOffset,
  };
  // one frame is decoded at a time: its size is what the limit bounds
  checkDecodedSize(file, width, height, spp, bitsAllocated / 8);
  const need = frameBytes(header) * frames;
  const present = Math.min(px.length, ds.byteArray.length - px.dataOffset);
  if (present < need) {
    bad(`truncated DICOM (pixel data holds ${present} bytes, ${frames} frame${frames > 1 ? 's' : ''} of ${width}x${height}x${spp} at ${bitsAllocated} bits need ${need})`);
  }
  return header;
}

/** Which frame to read: refuses a multi-frame file without one, and one out of range. */
export function chooseFrame(file: string, frames: number, frame: number | undefined, unit = 'frame'): number {
  if (frame === undefined) {
    if (frames > 1) throw new PeftError(`${file}: holds ${frames} ${unit}s; choose one with --frame N (1 to ${frames})`);
    return 0;
  }
  if (!Number.isInteger(frame) || frame < 1 || frame > frames) {
    throw new PeftError(`${file}: --frame ${frame} is out of range (the file holds ${frames} ${unit}${frames > 1 ? 's' : ''}: 1 to ${frames})`);
  }
  return frame - 1;
}

/** The stored values of one frame, sample by sample (channels-last), after Bits Stored / High Bit / sign. */
function storedValues(h: DicomHeader, index: number): Int32Array {
  const bytes = h.dataSet.byteArray as Uint8Array;
  const n = h.width * h.height * h.samplesPerPixel;
  const start = h.pixelOffset + index * frameBytes(h);
  const view = new DataView(bytes.buffer, bytes.byteOffset + start, frameBytes(h));
  const little = h.transferSyntax !== explicitBE;
  const shift = h.highBit - h.bitsStored + 1;
  const mask = h.bitsStored >= 32 ? 0xffffffff : 2 ** h.bitsStored - 1;
  const sign = 2 ** (h.bitsStored - 1);
  const out = new Int32Array(n);
  const plane = h.width * h.height;
  for (let i = 0; i < n; i++) {
    const raw = h.bitsAllocated === 8 ? view.getUint8(i) : view.getUint16(i * 2, little);
    let v = (raw >>> shift) & mask;
    if (h.signed && v >= sign) v -= mask + 1;
    // planar configuration 1 stores R plane, G plane, B plane: reorder to channels-last
    const at = h.planar ? (i % plane) * 3 + Math.floor(i / plane) : i;
    out[at] = v;
  }
  return out;
}

/** Decodes one frame of a DICOM file to 8-bit grey or RGB. */
export function decodeDicom(bytes: Uint8Array, file: string, options: FrameOptions = {}): DecodedPixels {
  const h = readDicomHeader(bytes, file);
  const index = chooseFrame(file, h.frames, options.frame);
  const stored = storedValues(h, index);
  const { width, height } = h;
  if (h.samplesPerPixel === 1) {
    const values = h.slope === 1 && h.intercept === 0 ? stored : Float64Array.from(stored, (v) => v * h.slope + h.intercept);
    const plain8 = h.bitsAllocated === 8 && !h.signed && h.slope === 1 && h.intercept === 0;
    const win = options.window ?? h.window ?? (plain8 ? identityWindow : minMaxWindow(values));
    return { width, height, channels: 1, data: applyWindow(values, win, h.photometric === 'MONOCHROME1') };
  }
  if (h.photometric === 'YBR_FULL') return { width, height, channels: 3, data: ybrFullToRgb(stored) };
  // the VOI window is for grey images: 8-bit colour is taken as it is, wider colour samples are windowed
  const plain8 = h.bitsAllocated === 8 && !h.signed;
  const win = plain8 ? identityWindow : (options.window ?? minMaxWindow(stored));
  return { width, height, channels: 3, data: applyWindow(stored, win) };
}

/** YBR_FULL to RGB (PS3.3 C.7.6.3.1.2, the inverse of its full-range equations). */
function ybrFullToRgb(src: Int32Array): Uint8Array {
  const out = new Uint8Array(src.length);
  const clamp = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : Math.round(v));
  for (let i = 0; i < src.length; i += 3) {
    const y = src[i]!;
    const cb = src[i + 1]! - 128;
    const cr = src[i + 2]! - 128;
    out[i] = clamp(y + 1.402 * cr);
    out[i + 1] = clamp(y - 0.344136 * cb - 0.714136 * cr);
    out[i + 2] = clamp(y + 1.772 * cb);
  }
  return out;
}
