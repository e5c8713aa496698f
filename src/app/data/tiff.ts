// TIFF files to 8-bit pixels, through image-js's `tiff` decoder (pure
// TypeScript), behind a strict pre-pass of our own. The pre-pass walks the
// page directories (IFDs) and checks, before any pixel is decoded: the chain
// ends (no cycle, at most `imageLimits.maxFrames` pages), every tag's value
// lies inside the file, the chosen page's dimensions are within the limits,
// its layout is one the decoder reads correctly, every strip or tile lies
// inside the file and holds (uncompressed) or inflates to (LZW, deflate) no
// more than the page's size implies, so no buffer beyond what the header
// justifies is ever allocated. Values wider than 8 bits go through the same
// window as DICOM (`window.ts`); 8-bit pages are taken as they are, except
// that `--window` applies to grey ones. Multi-page files need `--frame N`
// like multi-frame DICOM.
import { Decompress } from 'fflate';
import { decode as decodeTiffPages } from 'tiff';
import { PeftError } from '../../core/errors.js';
import { chooseFrame, type FrameOptions } from './dicom.js';
import { checkDecodedSize, checkDimensions, imageLimits } from './image-limits.js';
import type { DecodedPixels } from './png.js';
import { applyWindow, identityWindow, minMaxWindow } from './window.js';

/** Bytes per value of each TIFF field type (1..12); other types are skipped, as the decoder does. */
const typeSize = [0, 1, 1, 2, 4, 8, 1, 1, 2, 4, 8, 4, 8];

const compressionNames: Record<number, string> = {
  1: 'none', 2: 'CCITT modified Huffman RLE', 3: 'CCITT Group 3 fax', 4: 'CCITT Group 4 fax', 5: 'LZW',
  6: 'old-style JPEG', 7: 'JPEG', 8: 'Adobe Deflate', 32773: 'PackBits', 32946: 'Deflate',
  34712: 'JPEG 2000', 34887: 'LERC', 34892: 'lossy JPEG', 34925: 'LZMA', 50000: 'Zstandard', 50001: 'WebP',
};
const photometricNames: Record<number, string> = {
  0: 'WhiteIsZero', 1: 'BlackIsZero', 2: 'RGB', 3: 'palette', 4: 'transparency mask', 5: 'CMYK', 6: 'YCbCr', 8: 'CIELab',
};

interface Entry {
  type: number;
  count: number;
  /** Where the value lies: in the entry itself (4 bytes or less) or at its offset. */
  at: number;
}

/** One page's directory, every entry's value checked to lie inside the file. */
type Directory = Map<number, Entry>;

export interface TiffHeader {
  width: number;
  height: number;
  /** Number of pages. */
  frames: number;
  /** Samples per pixel of the first page. */
  channels: number;
  /** Bytes of one of its samples (1 or 2). */
  bytesPerSample: number;
}

class TiffReader {
  readonly little: boolean;
  private readonly view: DataView;
  private entriesRead = 0;

  constructor(readonly bytes: Uint8Array, readonly file: string) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (bytes.length < 8) this.bad('truncated TIFF header');
    this.little = bytes[0] === 0x49;
    const magic = this.u16(2);
    if (magic === 43) this.bad('BigTIFF is not supported (classic TIFF only)');
    if (magic !== 42) this.bad(`not a TIFF file (magic number ${magic})`);
  }

  bad(why: string): never {
    throw new PeftError(`${this.file}: ${why}`);
  }

  u16(o: number): number {
    return this.view.getUint16(o, this.little);
  }

  u32(o: number): number {
    return this.view.getUint32(o, this.little);
  }

  /** Reads the directory at `offset` and checks each value lies inside the file; follows EXIF/GPS sub-directories as the decoder does. */
  directory(offset: number, seen: Set<number>, depth = 0): { dir: Directory; next: number } {
    if (offset < 8 || offset + 2 > this.bytes.length) this.bad(`corrupt TIFF (directory offset ${offset} outside the file)`);
    if (seen.has(offset)) this.bad(`corrupt TIFF (directory at byte ${offset} is referenced twice: a loop)`);
    seen.add(offset);
    const n = this.u16(offset);
    const end = offset + 2 + n * 12;
    if (end + 4 > this.bytes.length) this.bad(`truncated TIFF (directory at byte ${offset} with ${n} entries)`);
    this.entriesRead += n;
    if (this.entriesRead > imageLimits.maxTiffEntries) this.bad(`TIFF with more than ${imageLimits.maxTiffEntries} directory entries`);
    const dir: Directory = new Map();
    for (let k = 0; k < n; k++) {
      const e = offset + 2 + k * 12;
      const tag = this.u16(e);
      const type = this.u16(e + 2);
      const count = this.u32(e + 4);
      if (type < 1 || type > 12) continue;
      const size = typeSize[type]! * count;
      const at = size <= 4 ? e + 8 : this.u32(e + 8);
      if (at + size > this.bytes.length) this.bad(`corrupt TIFF (tag ${tag} holds ${count} values beyond the end of the file)`);
      dir.set(tag, { type, count, at });
      if (tag === 0x8769 || tag === 0x8825) {
        if (count !== 1 || (type !== 4 && type !== 3)) this.bad(`corrupt TIFF (sub-directory tag ${tag} of type ${type} with ${count} values)`);
        if (depth >= 3) this.bad('corrupt TIFF (sub-directories nested too deep)');
        this.directory(this.value(dir.get(tag)!, 0), seen, depth + 1);
      }
    }
    return { dir, next: this.u32(end) };
  }

  /** The `i`-th value of a SHORT, LONG or BYTE entry. */
  value(e: Entry, i: number): number {
    if (e.type === 3 || e.type === 8) return this.u16(e.at + i * 2);
    if (e.type === 4 || e.type === 9) return this.u32(e.at + i * 4);
    if (e.type === 1 || e.type === 7) return this.bytes[e.at + i]!;
    return this.bad(`corrupt TIFF (a numeric tag of type ${e.type})`);
  }

  values(dir: Directory, tag: number): number[] | undefined {
    const e = dir.get(tag);
    if (!e) return undefined;
    return Array.from({ length: e.count }, (_, i) => this.value(e, i));
  }

  one(dir: Directory, tag: number): number | undefined {
    const e = dir.get(tag);
    return e && e.count > 0 ? this.value(e, 0) : undefined;
  }

  /** Every page's directory, in order. */
  pages(): Directory[] {
    const pages: Directory[] = [];
    const seen = new Set<number>();
    let next = this.u32(4);
    if (next === 0) this.bad('corrupt TIFF (no image directory)');
    while (next !== 0) {
      if (pages.length >= imageLimits.maxFrames) this.bad(`TIFF with more than ${imageLimits.maxFrames} pages, the limit`);
      const { dir, next: after } = this.directory(next, seen);
      pages.push(dir);
      next = after;
    }
    return pages;
  }
}

/** The layout of one page, checked; what decoding needs. */
interface Page {
  width: number;
  height: number;
  spp: number;
  bits: number;
  sampleFormat: number;
  photometric: number;
  compression: number;
  /** [offset, byte count, decoded bytes expected] of each strip or tile. */
  chunks: [number, number, number][];
}

function checkPage(r: TiffReader, dir: Directory, page: number, pages: number): Page {
  const where = pages > 1 ? ` (page ${page + 1})` : '';
  const bad = (why: string): never => r.bad(`${why}${where}`);
  const width = r.one(dir, 256) ?? bad('TIFF page without ImageWidth');
  const height = r.one(dir, 257) ?? bad('TIFF page without ImageLength');
  checkDimensions(r.file, width, height);
  const spp = r.one(dir, 277) ?? 1;
  const bitsList = r.values(dir, 258) ?? [1];
  const bits = bitsList[0]!;
  const sampleFormat = r.one(dir, 339) ?? 1;
  const photometric = r.one(dir, 262) ?? bad('TIFF page without PhotometricInterpretation');
  const compression = r.one(dir, 259) ?? 1;
  if (spp < 1 || spp > 4) bad(`TIFF with ${spp} samples per pixel is not supported (1 to 4)`);
  if (bitsList.some((b) => b !== bits)) bad(`TIFF with mixed bits per sample ${bitsList.join(',')} is not supported`);
  const intOk = (bits === 8 || bits === 16) && (sampleFormat === 1 || sampleFormat === 2);
  const floatOk = (bits === 32 || bits === 64) && sampleFormat === 3;
  if (!intOk && !floatOk) bad(`TIFF with ${bits}-bit samples of format ${sampleFormat} is not supported (8 or 16-bit integers, 32 or 64-bit floats)`);
  const grey = photometric === 0 || photometric === 1;
  if (!((grey && spp <= 2) || (photometric === 2 && spp >= 3) || (photometric === 3 && spp === 1 && bits === 8 && sampleFormat === 1))) {
    bad(`TIFF colour model ${photometricNames[photometric] ?? photometric} with ${spp} samples of ${bits} bits is not supported (grey, RGB, or an 8-bit palette)`);
  }
  if (photometric === 3 && (r.values(dir, 320)?.length ?? 0) !== 3 * 256) bad('corrupt TIFF (palette page without a 256-entry ColorMap)');
  if (compression !== 1 && compression !== 5 && compression !== 8 && compression !== 32946) {
    bad(`TIFF compression ${compressionNames[compression] ?? 'unknown'} (${compression}) is not supported (none, LZW or Deflate); convert the file first, e.g. with tiffcp -c none`);
  }
  const predictor = r.one(dir, 317) ?? 1;
  if (predictor !== 1 && !(predictor === 2 && (bits === 8 || bits === 16))) bad(`TIFF predictor ${predictor} with ${bits}-bit samples is not supported`);
  if ((r.one(dir, 274) ?? 1) !== 1) bad(`TIFF orientation ${r.one(dir, 274)} is not supported (top-left only)`);
  if (spp > 1 && (r.one(dir, 284) ?? 1) !== 1) bad('TIFF with separate colour planes (PlanarConfiguration 2) is not supported');
  const bytesPerSample = bits / 8;
  checkDecodedSize(r.file, width, height, spp, bytesPerSample);
  const chunks: [number, number, number][] = [];
  if (dir.has(322) || dir.has(324)) {
    // the decoder's tile path copies only a pixel's first sample
    if (spp > 1) bad('tiled TIFF with more than one sample per pixel is not supported (strips only)');
    const tw = r.one(dir, 322) ?? bad('corrupt TIFF (tiles without TileWidth)');
    const th = r.one(dir, 323) ?? bad('corrupt TIFF (tiles without TileLength)');
    if (tw < 1 || th < 1 || tw * th > imageLimits.maxPixels) bad(`corrupt TIFF (tile size ${tw}x${th})`);
    const offsets = r.values(dir, 324) ?? bad('corrupt TIFF (tiles without TileOffsets)');
    const counts = r.values(dir, 325) ?? bad('corrupt TIFF (tiles without TileByteCounts)');
    const n = Math.ceil(width / tw) * Math.ceil(height / th);
    if (offsets.length < n || counts.length < n) bad(`truncated TIFF (${Math.min(offsets.length, counts.length)} tiles of ${n})`);
    for (let i = 0; i < n; i++) chunks.push([offsets[i]!, counts[i]!, tw * th * bytesPerSample]);
  } else {
    const offsets = r.values(dir, 273) ?? bad('corrupt TIFF (no StripOffsets)');
    const rows = Math.min(r.one(dir, 278) ?? height, height);
    if (rows < 1) bad('corrupt TIFF (RowsPerStrip 0)');
    const rowBytes = width * spp * bytesPerSample;
    const n = Math.ceil(height / rows);
    // as the decoder does: without StripByteCounts, an uncompressed strip is as long as its rows
    const counts = r.values(dir, 279) ?? (compression === 1 ? offsets.map(() => rows * rowBytes) : bad('corrupt TIFF (compressed strips without StripByteCounts)'));
    if (offsets.length !== counts.length) bad(`corrupt TIFF (${offsets.length} strip offsets, ${counts.length} byte counts)`);
    if (offsets.length < n) bad(`truncated TIFF (${offsets.length} strips hold ${offsets.length * rows} of ${height} rows)`);
    for (let i = 0; i < offsets.length; i++) chunks.push([offsets[i]!, counts[i]!, Math.max(0, Math.min(rows, height - i * rows)) * rowBytes]);
  }
  for (const [offset, count, expected] of chunks) {
    if (offset + count > r.bytes.length) bad(`truncated TIFF (image data at byte ${offset} runs past the end of the file)`);
    if (compression === 1 && count < expected) bad(`truncated TIFF (a strip or tile holds ${count} of ${expected} bytes)`);
  }
  return { width, height, spp, bits, sampleFormat, photometric, compression, chunks };
}

/** How many bytes a deflate stream inflates to, stopping once past `cap`. */
function inflatedSize(data: Uint8Array, cap: number): number {
  let got = 0;
  const d = new Decompress((chunk) => {
    got += chunk.length;
    if (got > cap) throw new RangeError('cap');
  });
  try {
    // small pushes bound what any one call can inflate
    for (let s = 0; s < data.length; s += 16384) d.push(data.subarray(s, s + 16384), s + 16384 >= data.length);
  } catch (err) {
    if (got > cap) return got;
    throw err;
  }
  return got;
}

/**
 * How many bytes an LZW strip decodes to, stopping once past `cap`: TIFF's
 * LZW (MSB-first codes, 9 to 12 bits, early change) read exactly as the
 * decoder reads it, keeping only each table entry's length.
 */
function lzwSize(data: Uint8Array, cap: number): number {
  const lengths = new Int32Array(4097);
  lengths.fill(1, 0, 256);
  const bitJumps = [0, 0, 0, 0, 0, 0, 0, 0, 0, 511, 1023, 2047, 4095];
  const mask = [511, 1023, 2047, 4095];
  let tableLength = 258;
  let width = 9;
  let nextData = 0;
  let nextBits = 0;
  let p = 0;
  const code = (): number => {
    nextData = (nextData << 8) | (data[p++]! & 0xff);
    nextBits += 8;
    if (nextBits < width) {
      nextData = (nextData << 8) | (data[p++]! & 0xff);
      nextBits += 8;
    }
    const c = (nextData >> (nextBits - width)) & (mask[width - 9] ?? 0);
    nextBits -= width;
    return p > data.length ? 257 : c;
  };
  const add = (len: number): boolean => {
    if (tableLength >= 4096) return false; // the decoder fails here
    lengths[tableLength++] = len;
    if (tableLength === bitJumps[width]) width++;
    return true;
  };
  let out = 0;
  let old = 0;
  for (;;) {
    let c = code();
    if (c === 257) break;
    if (c === 256) {
      tableLength = 258;
      width = 9;
      c = code();
      if (c === 257) break;
      out += lengths[c]!;
    } else if (c < tableLength) {
      out += lengths[c]!;
      if (!add(lengths[old]! + 1)) break;
    } else {
      const len = lengths[old]! + 1;
      out += len;
      if (!add(len)) break;
    }
    old = c;
    if (out > cap) break;
  }
  return out;
}

/** Reads and checks a TIFF's header: its page count and the first page's layout; no pixel is decoded. */
export function readTiffHeader(bytes: Uint8Array, file: string): TiffHeader {
  const r = new TiffReader(bytes, file);
  const pages = r.pages();
  const first = checkPage(r, pages[0]!, 0, pages.length);
  return { width: first.width, height: first.height, frames: pages.length, channels: first.spp, bytesPerSample: first.bits / 8 };
}

/** Decodes one page of a TIFF to 8-bit grey or RGB. */
export function decodeTiff(bytes: Uint8Array, file: string, options: FrameOptions = {}): DecodedPixels {
  const r = new TiffReader(bytes, file);
  const pages = r.pages();
  const index = chooseFrame(file, pages.length, options.frame, 'page');
  const page = checkPage(r, pages[index]!, index, pages.length);
  if (page.compression !== 1) {
    for (const [offset, count, expected] of page.chunks) {
      const data = bytes.subarray(offset, offset + count);
      const cap = expected + 65536;
      let size: number;
      try {
        size = page.compression === 5 ? lzwSize(data, cap) : inflatedSize(data, cap);
      } catch (err) {
        throw new PeftError(`${file}: corrupt TIFF image data (${(err as Error).message})`);
      }
      if (size > cap) throw new PeftError(`${file}: corrupt TIFF (a strip or tile decompresses to more than the ${expected} bytes its size implies)`);
    }
  }
  let ifd;
  try {
    ifd = decodeTiffPages(bytes, { pages: [index] })[0]!;
  } catch (err) {
    throw new PeftError(`${file}: corrupt or truncated TIFF (${((err as Error)?.message ?? String(err)).slice(0, 200)})`);
  }
  const { width, height, spp, bits, sampleFormat, photometric } = page;
  const n = width * height;
  let data = ifd.data as ArrayLike<number> & { buffer: ArrayBufferLike; byteOffset: number; length: number };
  if (data.length !== n * spp) throw new PeftError(`${file}: corrupt TIFF (decoded ${data.length} samples, ${width}x${height}x${spp} expected)`);
  if (sampleFormat === 2) data = bits === 8 ? new Int8Array(data.buffer, data.byteOffset, data.length) : new Int16Array(data.buffer, data.byteOffset, data.length);

  if (photometric === 3) {
    // 16-bit palette entries: all reds, then greens, then blues
    const map = r.values(pages[index]!, 320)!;
    const out = new Uint8Array(n * 3);
    for (let i = 0; i < n; i++) {
      const v = data[i]!;
      for (let c = 0; c < 3; c++) out[i * 3 + c] = Math.round(map[c * 256 + v]! / 257);
    }
    return { width, height, channels: 3, data: out };
  }
  const channels = spp >= 3 ? 3 : 1;
  // drop alpha and any extra sample
  const values = spp === channels ? data : Float64Array.from({ length: n * channels }, (_, i) => data[Math.floor(i / channels) * spp + (i % channels)]!);
  // as for DICOM: a window is for grey values, and for colour samples wider than 8 bits
  const plain8 = bits === 8 && sampleFormat === 1;
  const win = plain8 && channels === 3 ? identityWindow : (options.window ?? (plain8 ? identityWindow : minMaxWindow(values)));
  return { width, height, channels, data: applyWindow(values, win) };
}
