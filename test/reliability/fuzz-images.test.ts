// Images and rater masks under hostile input: mutated PNG, JPEG and BMP files
// (truncated, bit-flipped, lying lengths), PNGs rebuilt with valid CRCs around
// lying headers and image data, BMPs with lying header fields. Decoding as RGB
// (images) and as grey followed by the binarised mask target (masks).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encode as fastPngEncode } from 'fast-png';
import { zlibSync } from 'fflate';
import { decodeImage, encodeJpeg, encodePng, readImage, type Image8 } from '../../src/app/data/image-io.js';
import { encodeBmp } from '../../src/app/data/bmp.js';
import { binarisedMask } from '../../src/app/data/mask-target.js';
import { crc32 } from '../../src/core/io/torch-zip.js';
import { fuzz, fuzzAsync, hostileCase, hostileCaseAsync, mutatedArb, runs, verdict } from '../support/fuzz-harness.js';

const IMAGE = '/fuzz/Training-400/g0001/g0001.jpg';
const MASK = '/fuzz/Training-400/g0001/g0001_seg_cup_1.png';

function picture(w: number, h: number, channels: 1 | 3 = 3): Image8 {
  const data = new Uint8Array(w * h * channels);
  for (let i = 0; i < data.length; i++) data[i] = (i * 37 + (i >> 5) * 11) & 255;
  return { width: w, height: h, channels, data };
}

function bmpVariant(bpp: 1 | 4 | 8 | 16 | 24 | 32, topDown: boolean): Uint8Array {
  const w = 7;
  const h = 5;
  const palette = bpp <= 8 ? 1 << bpp : 0;
  const stride = Math.floor((bpp * w + 31) / 32) * 4;
  const offset = 14 + 40 + palette * 4;
  const b = new Uint8Array(offset + stride * h);
  const dv = new DataView(b.buffer);
  b[0] = 0x42;
  b[1] = 0x4d;
  dv.setUint32(2, b.length, true);
  dv.setUint32(10, offset, true);
  dv.setUint32(14, 40, true);
  dv.setInt32(18, w, true);
  dv.setInt32(22, topDown ? -h : h, true);
  dv.setUint16(26, 1, true);
  dv.setUint16(28, bpp, true);
  dv.setUint32(46, palette, true);
  for (let i = 0; i < palette * 4; i++) b[54 + i] = (i * 29) & 255;
  for (let i = offset; i < b.length; i++) b[i] = (i * 13) & 255;
  return b;
}

function seeds(): Uint8Array[] {
  const rgb = picture(12, 9);
  const grey = picture(10, 6, 1);
  return [
    encodePng(rgb),
    encodePng(grey),
    fastPngEncode({ width: 5, height: 4, data: Uint16Array.from({ length: 20 }, (_, i) => i * 3000), channels: 1, depth: 16 }),
    fastPngEncode({ width: 6, height: 3, data: Uint8Array.from({ length: 72 }, (_, i) => i * 3), channels: 4, depth: 8 }),
    encodeJpeg(rgb, 80),
    encodeJpeg(picture(17, 16), 40),
    encodeBmp(rgb),
    bmpVariant(1, false),
    bmpVariant(4, true),
    bmpVariant(8, false),
    bmpVariant(16, true),
    bmpVariant(32, false),
  ];
}

const asImage = (bytes: Uint8Array) => decodeImage(bytes, IMAGE, 'rgb');
const asMask = (bytes: Uint8Array) => binarisedMask(decodeImage(bytes, MASK, 'grey'), 32, 8);

// --- PNGs with valid CRCs around lying content
function chunk(type: string, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + body.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, body.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(body, 8);
  dv.setUint32(8 + body.length, crc32(out.subarray(4, 8 + body.length)));
  return out;
}
function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
const PNG_SIG = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);
const pngArb = fc
  .record({
    width: fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 0, max: 40 }) }, { weight: 1, arbitrary: fc.constantFrom(16384, 16385, 2 ** 31, 2 ** 32 - 1) }),
    height: fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 0, max: 40 }) }, { weight: 1, arbitrary: fc.constantFrom(16384, 100000, 2 ** 32 - 1) }),
    kind: fc.oneof(
      { weight: 3, arbitrary: fc.constantFrom([1, 0], [2, 0], [4, 0], [8, 0], [16, 0], [8, 2], [16, 2], [1, 3], [2, 3], [4, 3], [8, 3], [8, 4], [16, 4], [8, 6], [16, 6]) },
      { weight: 1, arbitrary: fc.tuple(fc.constantFrom(1, 2, 4, 8, 16, 3, 0), fc.constantFrom(0, 2, 3, 4, 6, 1, 7)) },
    ),
    interlace: fc.constantFrom(0, 1, 0, 1, 2),
    raw: fc.oneof(fc.uint8Array({ maxLength: 2048 }), fc.integer({ min: 0, max: 1 << 20 }).map((n) => new Uint8Array(n))),
    palette: fc.option(fc.oneof(fc.uint8Array({ maxLength: 800 }), fc.integer({ min: 1, max: 256 }).map((n) => Uint8Array.from({ length: 3 * n }, (_, i) => i))), { nil: undefined }),
    trns: fc.option(fc.uint8Array({ maxLength: 300 }), { nil: undefined }),
    extra: fc.array(fc.tuple(fc.constantFrom('iCCP', 'zTXt', 'tEXt', 'iCCP', 'zTXt', 'tEXt', 'IDAT', 'IHDR', 'PLTE', 'abcd'), fc.uint8Array({ maxLength: 64 })), { maxLength: 2 }),
    splitIdat: fc.integer({ min: 1, max: 4 }),
    end: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
    exact: fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
    filler: fc.integer({ min: 0, max: 255 }),
  })
  .map(({ width, height, kind, interlace, raw, palette, trns, extra, splitIdat, end, exact, filler }) => {
    const [depth, colorType] = kind as [number, number];
    if (exact && width <= 40 && height <= 40) {
      // image data of exactly the size the header implies, with valid filter bytes: these get past the pre-pass
      const channels = ({ 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 } as Record<number, number>)[colorType] ?? 1;
      const line = (w: number) => Math.ceil((w * channels * depth) / 8) + 1;
      const passes = interlace === 1 ? [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]] : [[0, 0, 1, 1]];
      const rows: number[] = [];
      for (const [x0, y0, dx, dy] of passes) {
        const pw = Math.ceil((width - x0!) / dx!);
        const ph = Math.ceil((height - y0!) / dy!);
        if (pw > 0 && ph > 0) for (let r = 0; r < ph; r++) rows.push(line(pw));
      }
      const total = rows.reduce((a, b) => a + b, 0);
      raw = new Uint8Array(total);
      let at = 0;
      for (const n of rows) {
        raw[at] = filler % 5;
        for (let i = 1; i < n; i++) raw[at + i] = (filler * (at + i)) & 255;
        at += n;
      }
    }
    const ihdr = new Uint8Array(13);
    const dv = new DataView(ihdr.buffer);
    dv.setUint32(0, width);
    dv.setUint32(4, height);
    ihdr[8] = depth;
    ihdr[9] = colorType;
    ihdr[12] = interlace;
    const z = zlibSync(raw);
    const parts = [PNG_SIG, chunk('IHDR', ihdr)];
    if (palette) parts.push(chunk('PLTE', palette));
    if (trns) parts.push(chunk('tRNS', trns));
    for (const [t, b] of extra) parts.push(chunk(t, t === 'iCCP' || t === 'zTXt' ? concat([Uint8Array.of(120, 0, 0), zlibSync(new Uint8Array(1 << 16))]) : b));
    const step = Math.ceil(z.length / splitIdat);
    for (let i = 0; i < z.length; i += step) parts.push(chunk('IDAT', z.subarray(i, i + step)));
    if (end) parts.push(chunk('IEND', new Uint8Array(0)));
    return concat(parts);
  });

// --- BMPs with lying header fields
const bmpArb = fc
  .record({
    dib: fc.constantFrom(12, 40, 52, 56, 64, 108, 124, 0, 41, 2 ** 32 - 1),
    width: fc.oneof(fc.integer({ min: -3, max: 40 }), fc.constantFrom(16384, 2 ** 31 - 1, -(2 ** 31))),
    height: fc.oneof(fc.integer({ min: -40, max: 40 }), fc.constantFrom(16384, -(2 ** 31), 2 ** 31 - 1)),
    bpp: fc.constantFrom(1, 4, 8, 16, 24, 32, 0, 2, 64),
    compression: fc.constantFrom(0, 1, 2, 3, 6, 4, 2 ** 32 - 1),
    paletteCount: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.constantFrom(2 ** 31, 2 ** 32 - 1)),
    dataOffset: fc.oneof(fc.integer({ min: 0, max: 2000 }), fc.constantFrom(2 ** 32 - 1, 2 ** 31)),
    masks: fc.tuple(fc.nat(), fc.nat(), fc.nat()),
    body: fc.integer({ min: 0, max: 4096 }),
  })
  .map(({ dib, width, height, bpp, compression, paletteCount, dataOffset, masks, body }) => {
    const head = Math.max(54, 14 + Math.min(dib, 124));
    const b = new Uint8Array(head + 12 + body);
    const dv = new DataView(b.buffer);
    b[0] = 0x42;
    b[1] = 0x4d;
    dv.setUint32(2, b.length, true);
    dv.setUint32(10, dataOffset, true);
    dv.setUint32(14, dib, true);
    if (dib === 12) {
      dv.setUint16(18, width & 0xffff, true);
      dv.setUint16(20, height & 0xffff, true);
      dv.setUint16(24, bpp, true);
    } else {
      dv.setInt32(18, width, true);
      dv.setInt32(22, height, true);
      dv.setUint16(28, bpp, true);
      dv.setUint32(30, compression >>> 0, true);
      dv.setUint32(46, paletteCount >>> 0, true);
      const at = dib >= 52 ? 54 : 14 + Math.min(dib, 124);
      if (at + 12 <= b.length) masks.forEach((m, i) => dv.setUint32(at + 4 * i, m >>> 0, true));
    }
    for (let i = head + 12; i < b.length; i++) b[i] = (i * 7) & 255;
    return b;
  });

describe('image and mask decoding under hostile input', () => {
  const s = seeds();

  it('the seeds decode', () => {
    for (const b of s) expect(asImage(b).width).toBeGreaterThan(0);
  });

  it('mutated PNG, JPEG and BMP files decoded as images', () => {
    fuzz('images', 'mutated PNG/JPEG/BMP as RGB images', mutatedArb(s), (b) => verdict(hostileCase(IMAGE, b.length, () => asImage(b))), runs(400));
  });

  it('mutated PNG, JPEG and BMP files decoded as rater masks (grey, binarised target)', () => {
    fuzz('images', 'mutated PNG/JPEG/BMP as masks', mutatedArb(s), (b) => verdict(hostileCase(MASK, b.length, () => asMask(b))), runs(300));
  });

  it('PNGs with valid CRCs around lying headers, palettes, image data and ancillary bombs', () => {
    fuzz('images', 'structured hostile PNGs', pngArb, (b) => verdict(hostileCase(MASK, b.length, () => asMask(b))), runs(300));
  });

  it('a JPEG whose frame header declares far more pixels than its bytes can hold is refused before decoding', () => {
    const j = encodeJpeg(picture(16, 16), 50);
    let i = 2;
    while (!(j[i] === 0xff && j[i + 1] === 0xc0)) i++;
    for (const side of [2000, 16000]) {
      const b = j.slice();
      b[i + 5] = side >> 8;
      b[i + 6] = side & 255;
      b[i + 7] = side >> 8;
      b[i + 8] = side & 255;
      const o = hostileCase(IMAGE, b.length, () => asImage(b), { allowance: 4 * 2 ** 20 });
      expect(o.ok).toBe(false);
      // 16000 x 16000 is over the per-image limit before its bytes are counted
      if (!o.ok) expect(o.error.message).toMatch(side === 2000 ? /more than its \d+ bytes can hold/ : /decodes to 732\.4 MiB, more than the limit of 128 MiB per image/);
    }
  });

  it('BMPs with lying header fields', () => {
    fuzz('images', 'structured hostile BMPs', bmpArb, (b) => verdict(hostileCase(IMAGE, b.length, () => asImage(b))), runs(300));
  });

  it('files on disk: missing, a folder, empty, text, and a mutated image', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'peft-fuzz-img-'));
    mkdirSync(join(dir, 'folder.png'));
    writeFileSync(join(dir, 'empty.png'), '');
    writeFileSync(join(dir, 'text.jpg'), 'just text\n');
    const files = ['missing.png', 'folder.png', 'empty.png', 'text.jpg'].map((f) => join(dir, f));
    for (const f of files) {
      const o = await hostileCaseAsync(f, () => readImage(f, 'grey'));
      expect(o.ok).toBe(false);
    }
    await fuzzAsync('images', 'mutated files read from disk', mutatedArb(s), async (b) => {
      const f = join(dir, 'm.png');
      writeFileSync(f, b);
      return verdict(await hostileCaseAsync(f, () => readImage(f, 'rgb')));
    }, runs(100));
  });
});
