// PNG decoding through fast-png, behind a strict pre-pass: the chunk list is
// walked and checked (lengths, IHDR fields, IDAT present, IEND reached), the
// raw size the header implies is checked against what the compressed data can
// hold (deflate cannot expand beyond ~1032:1), and the image data is inflated
// with a hard cap of exactly that size. Only the critical chunks (IHDR, PLTE,
// tRNS, IDAT, IEND) are handed to the decoder, so ancillary compressed chunks
// (iCCP, zTXt) can never be used as decompression bombs.
import { decode as fastPngDecode, convertIndexedToRgb } from 'fast-png';
import { Unzlib } from 'fflate';
import { PeftError } from '../../core/errors.js';
import { checkDecodedSize, imageLimits } from './image-limits.js';

export interface DecodedPixels {
  width: number;
  height: number;
  /** 1 (grey), 2 (grey+alpha), 3 (RGB) or 4 (RGBA), 8 bits each. */
  channels: number;
  data: Uint8Array;
}

const keep = new Set(['IHDR', 'PLTE', 'tRNS', 'IDAT', 'IEND']);

function be32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

/** Bytes of filtered, inflated image data the header implies (Adam7 included). */
export function pngRawSize(width: number, height: number, bitsPerPixel: number, interlaced: boolean): number {
  const line = (w: number) => Math.ceil((w * bitsPerPixel) / 8) + 1;
  if (!interlaced) return height * line(width);
  const passes: Array<[number, number, number, number]> = [
    [0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2],
  ];
  let total = 0;
  for (const [x0, y0, dx, dy] of passes) {
    const pw = Math.ceil((width - x0) / dx);
    const ph = Math.ceil((height - y0) / dy);
    if (pw > 0 && ph > 0) total += ph * line(pw);
  }
  return total;
}

export function decodePng(bytes: Uint8Array, file: string): DecodedPixels {
  const bad = (why: string): never => {
    throw new PeftError(`${file}: ${why}`);
  };
  let o = 8;
  let width = 0;
  let height = 0;
  let depth = 0;
  let colorType = -1;
  let interlaced = false;
  let idatBytes = 0;
  let sawEnd = false;
  const parts: Uint8Array[] = [bytes.subarray(0, 8)];
  const idat: Uint8Array[] = [];
  let first = true;
  while (o < bytes.length) {
    if (o + 12 > bytes.length) bad('truncated PNG (incomplete chunk)');
    const len = be32(bytes, o);
    const type = String.fromCharCode(bytes[o + 4]!, bytes[o + 5]!, bytes[o + 6]!, bytes[o + 7]!);
    if (!/^[A-Za-z]{4}$/.test(type)) bad(`corrupt PNG (invalid chunk type at byte ${o})`);
    if (o + 12 + len > bytes.length) bad(`truncated PNG (chunk ${type} needs ${len} bytes)`);
    if (first && type !== 'IHDR') bad('corrupt PNG (first chunk is not IHDR)');
    const body = bytes.subarray(o + 8, o + 8 + len);
    if (type === 'IHDR') {
      if (!first || len !== 13) bad('corrupt PNG (bad IHDR)');
      width = be32(body, 0);
      height = be32(body, 4);
      depth = body[8]!;
      colorType = body[9]!;
      if (body[10] !== 0 || body[11] !== 0 || body[12]! > 1) bad('corrupt PNG (unknown compression, filter or interlace method)');
      interlaced = body[12] === 1;
      const allowed: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };
      if (!allowed[colorType]?.includes(depth)) bad(`corrupt PNG (colour type ${colorType} with bit depth ${depth})`);
      checkDecodedSize(file, width, height, colorType === 3 ? 4 : { 0: 1, 2: 3, 4: 2, 6: 4 }[colorType] ?? 1, depth === 16 ? 2 : 1);
    } else if (type === 'IDAT') {
      idatBytes += len;
      idat.push(body);
    }
    if (keep.has(type)) parts.push(bytes.subarray(o, o + 12 + len));
    first = false;
    o += 12 + len;
    if (type === 'IEND') {
      sawEnd = true;
      break;
    }
  }
  if (first) bad('truncated PNG (no chunks)');
  if (!sawEnd) bad('truncated PNG (no IEND chunk)');
  if (idatBytes === 0) bad('corrupt PNG (no image data)');
  if (colorType === 3 && !parts.some((p) => p.length >= 8 && String.fromCharCode(p[4]!, p[5]!, p[6]!, p[7]!) === 'PLTE')) {
    bad('corrupt PNG (indexed colour without a palette)');
  }
  const channels = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 }[colorType]!;
  const expected = pngRawSize(width, height, channels * depth, interlaced);
  if (expected > imageLimits.deflateMaxRatio * idatBytes + 1024) {
    bad(`truncated PNG (${width}x${height} needs ${expected} bytes of image data, the ${idatBytes} compressed bytes cannot hold them)`);
  }

  // bounded inflate: the stream must end and hold exactly the implied size
  let got = 0;
  let ended = false;
  const inflater = new Unzlib((chunk, final) => {
    got += chunk.length;
    if (got > expected) throw new PeftError(`${file}: corrupt PNG (image data larger than ${width}x${height} implies)`);
    if (final) ended = true;
  });
  try {
    // small slices bound the output of any one push (fflate inflates a whole push at once)
    const slice = 16384;
    for (let i = 0; i < idat.length; i++) {
      const part = idat[i]!;
      for (let s = 0; s < part.length; s += slice) {
        inflater.push(part.subarray(s, s + slice), i === idat.length - 1 && s + slice >= part.length);
      }
    }
  } catch (err) {
    if (err instanceof PeftError) throw err;
    bad(`corrupt PNG image data (${(err as Error).message})`);
  }
  if (!ended || got < expected) bad(`truncated PNG (image data holds ${got} of ${expected} bytes)`);

  let decoded: ReturnType<typeof fastPngDecode>;
  try {
    const total = parts.reduce((s, p) => s + p.length, 0);
    const clean = new Uint8Array(total);
    let off = 0;
    for (const p of parts) {
      clean.set(p, off);
      off += p.length;
    }
    decoded = fastPngDecode(clean, { checkCrc: true });
  } catch (err) {
    return bad(`corrupt PNG (${(err as Error).message})`);
  }
  return to8Bit(decoded, channels, file);
}

function to8Bit(png: ReturnType<typeof fastPngDecode>, channels: number, file: string): DecodedPixels {
  const { width, height, depth } = png;
  if (png.palette) {
    let rgb: Uint8Array;
    try {
      rgb = convertIndexedToRgb(png);
    } catch (err) {
      throw new PeftError(`${file}: corrupt PNG palette (${(err as Error).message})`);
    }
    const ch = png.palette[0]!.length; // 3 or 4 (with tRNS)
    return { width, height, channels: ch, data: rgb };
  }
  const n = width * height * channels;
  const out = new Uint8Array(n);
  const src = png.data;
  if (depth === 8) {
    out.set(src.subarray(0, n));
  } else if (depth === 16) {
    for (let i = 0; i < n; i++) out[i] = Math.round(src[i]! / 257);
  } else {
    // grey at 1, 2 or 4 bits: packed rows, scale to 0..255
    const perLine = Math.ceil((width * depth) / 8);
    const maxV = (1 << depth) - 1;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const bit = x * depth;
        const byte = src[y * perLine + (bit >> 3)]!;
        const v = (byte >> (8 - depth - (bit & 7))) & maxV;
        out[y * width + x] = Math.round((v * 255) / maxV);
      }
    }
  }
  return { width, height, channels, data: out };
}
