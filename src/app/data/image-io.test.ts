import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encode as fastPngEncode } from 'fast-png';
import { zlibSync } from 'fflate';
import { PeftError } from '../../core/errors.js';
import { decodeImage, encodeJpeg, encodePng, readImage, type Image8 } from './image-io.js';
import { encodeBmp } from './bmp.js';
import { readImageHeader } from './image-header.js';

function gradient(w: number, h: number): Image8 {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const i = (y * w + x) * 3;
    data[i] = (x * 255) / (w - 1);
    data[i + 1] = (y * 255) / (h - 1);
    data[i + 2] = 77;
  }
  return { width: w, height: h, channels: 3, data };
}

/** A PNG file from raw chunks with correct CRCs. */
function crc32(bytes: Uint8Array): number {
  let c = ~0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return ~c >>> 0;
}
function chunk(type: string, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + body.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, body.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(body, 8);
  dv.setUint32(8 + body.length, crc32(out.subarray(4, 8 + body.length)));
  return out;
}
function pngFrom(width: number, height: number, idat: Uint8Array, colorType = 0, depth = 8): Uint8Array {
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, width);
  dv.setUint32(4, height);
  ihdr[8] = depth;
  ihdr[9] = colorType;
  const parts = [new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', idat), chunk('IEND', new Uint8Array(0))];
  const total = parts.reduce((s, p) => s + p.length, 0);
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function expectPeftError(f: () => unknown, pattern: RegExp): void {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err, 'expected a PeftError').toBeInstanceOf(PeftError);
  expect((err as Error).message).toMatch(pattern);
  expect((err as Error).message).not.toContain('\n');
}

describe('image decoding', () => {
  it('PNG round-trips RGB and grey exactly; grey from RGB uses PIL luma', () => {
    const img = gradient(17, 9);
    const back = decodeImage(encodePng(img), 'g.png', 'rgb');
    expect(back.width).toBe(17);
    expect(back.height).toBe(9);
    expect(Array.from(back.data)).toEqual(Array.from(img.data));
    const grey = decodeImage(encodePng(img), 'g.png', 'grey');
    const [r, g, b] = [img.data[30]!, img.data[31]!, img.data[32]!];
    expect(grey.data[10]).toBe(Math.floor((r * 19595 + g * 38470 + b * 7471 + 0x8000) / 65536));
    const mask = { width: 5, height: 4, channels: 1 as const, data: new Uint8Array(20).map((_, i) => (i % 3 ? 255 : 0)) };
    expect(Array.from(decodeImage(encodePng(mask), 'm.png', 'grey').data)).toEqual(Array.from(mask.data));
  });

  it('PNG 16-bit, 1-bit and RGBA are converted to 8-bit', () => {
    const d16 = new Uint16Array([0, 65535, 257 * 100, 257 * 200]);
    const p16 = fastPngEncode({ width: 2, height: 2, data: d16, depth: 16, channels: 1 });
    expect(Array.from(decodeImage(p16, 'a.png', 'grey').data)).toEqual([0, 255, 100, 200]);
    // 1-bit grey, width 3: row bytes 0b101xxxxx, 0b010xxxxx
    const raw = new Uint8Array([0, 0b10100000, 0, 0b01000000]);
    const p1 = pngFrom(3, 2, zlibSync(raw), 0, 1);
    expect(Array.from(decodeImage(p1, 'b.png', 'grey').data)).toEqual([255, 0, 255, 0, 255, 0]);
    const rgba = fastPngEncode({ width: 1, height: 1, data: new Uint8Array([10, 20, 30, 0]), depth: 8, channels: 4 });
    expect(Array.from(decodeImage(rgba, 'c.png', 'rgb').data)).toEqual([10, 20, 30]);
  });

  it('JPEG round-trips closely (and deterministically); BMP exactly', () => {
    const img = gradient(32, 24);
    const j1 = encodeJpeg(img, 95);
    expect(Buffer.from(encodeJpeg(img, 95)).equals(Buffer.from(j1))).toBe(true);
    const back = decodeImage(j1, 'x.jpg');
    expect(back.width).toBe(32);
    let maxErr = 0;
    for (let i = 0; i < img.data.length; i++) maxErr = Math.max(maxErr, Math.abs(back.data[i]! - img.data[i]!));
    expect(maxErr).toBeLessThan(20);
    const bmp = decodeImage(encodeBmp(img), 'x.bmp');
    expect(Array.from(bmp.data)).toEqual(Array.from(img.data));
  });

  it('BMP with an 8-bit palette, top-down', () => {
    const w = 3, h = 2, stride = 4;
    const b = new Uint8Array(14 + 40 + 256 * 4 + stride * h);
    const dv = new DataView(b.buffer);
    b[0] = 0x42; b[1] = 0x4d;
    dv.setUint32(10, 14 + 40 + 1024, true);
    dv.setUint32(14, 40, true);
    dv.setInt32(18, w, true);
    dv.setInt32(22, -h, true);
    dv.setUint16(26, 1, true);
    dv.setUint16(28, 8, true);
    for (let i = 0; i < 256; i++) { b[54 + i * 4] = i; b[54 + i * 4 + 1] = 255 - i; b[54 + i * 4 + 2] = 7; }
    const px = 54 + 1024;
    b.set([1, 2, 3], px);
    b.set([4, 5, 6], px + stride);
    const img = decodeImage(b, 'p.bmp');
    expect(Array.from(img.data.subarray(0, 3))).toEqual([7, 254, 1]); // R=7, G=255-1, B=1
    expect(img.data[3 * 3 + 2]).toBe(4); // first pixel of the second (top-down) row
  });
});

describe('hostile images end in a PeftError naming the file', () => {
  const img = gradient(40, 30);
  it('truncated PNG and JPEG', () => {
    const png = encodePng(img);
    for (const cut of [5, 20, 40, png.length - 30, png.length - 5]) expectPeftError(() => decodeImage(png.subarray(0, cut), 'cut.png'), /^cut\.png: /);
    const jpg = encodeJpeg(img);
    for (const cut of [3, 30, 300, jpg.length - 20]) expectPeftError(() => decodeImage(jpg.subarray(0, cut), 'cut.jpg'), /^cut\.jpg: /);
    const bmp = encodeBmp(img);
    expectPeftError(() => decodeImage(bmp.subarray(0, bmp.length - 10), 'cut.bmp'), /^cut\.bmp: truncated BMP/);
  });

  it('a text file named .png, an empty file', () => {
    expectPeftError(() => decodeImage(new TextEncoder().encode('hello, world\n'), 'notes.png'), /notes\.png: not a PNG, JPEG, BMP, DICOM or TIFF image \(it starts with text/);
    expectPeftError(() => decodeImage(new Uint8Array(0), 'empty.png'), /empty\.png: .*empty/);
  });

  it('huge declared dimensions are refused before decoding', () => {
    const idat = zlibSync(new Uint8Array(10));
    expectPeftError(() => decodeImage(pngFrom(100000, 100000, idat), 'huge.png'), /huge\.png: image dimensions 100000x100000 exceed/);
    expectPeftError(() => decodeImage(pngFrom(16000, 16000, idat), 'big.png'), /big\.png: 16000x16000x1 decodes to 244\.1 MiB, more than the limit of 128 MiB per image/);
    expectPeftError(() => decodeImage(pngFrom(8000, 8000, idat), 'big.png'), /big\.png: truncated PNG .*cannot hold/);
    // a JPEG whose SOF0 claims 65000 x 65000
    const sof = new Uint8Array([0xff, 0xd8, 0xff, 0xc0, 0, 17, 8, 0xfd, 0xe8, 0xfd, 0xe8, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1, 0xff, 0xd9]);
    expectPeftError(() => decodeImage(sof, 'huge.jpg'), /huge\.jpg: image dimensions 65000x65000 exceed/);
    const sof2 = sof.slice();
    sof2.set([0x0f, 0xa0, 0x0f, 0xa0], 7); // 4000 x 4000 from 23 bytes
    expectPeftError(() => decodeImage(sof2, 'big.jpg'), /big\.jpg: JPEG declares 4000x4000 pixels, more than its 23 bytes/);
    sof2.set([0x1f, 0x40, 0x1f, 0x40], 7); // 8000 x 8000: 183 MiB as RGB
    expectPeftError(() => decodeImage(sof2, 'big.jpg'), /big\.jpg: 8000x8000x3 decodes to 183\.1 MiB, more than the limit of 128 MiB per image/);
    const bmp = encodeBmp(gradient(4, 4));
    new DataView(bmp.buffer).setInt32(18, 6000, true);
    new DataView(bmp.buffer).setInt32(22, 6000, true);
    expectPeftError(() => decodeImage(bmp, 'big.bmp'), /big\.bmp: truncated BMP/);
    expect(readImageHeader(encodePng(img), 'ok.png')).toMatchObject({ format: 'png', width: 40, height: 30, frames: 1 });
  });

  it('PNG image data larger or smaller than declared, bad CRC, bad zlib', () => {
    const raw = new Uint8Array((1 + 4) * 4);
    expectPeftError(() => decodeImage(pngFrom(4, 2, zlibSync(raw)), 'long.png'), /long\.png: corrupt PNG \(image data larger/);
    expectPeftError(() => decodeImage(pngFrom(4, 8, zlibSync(raw)), 'short.png'), /short\.png: truncated PNG \(image data holds/);
    expectPeftError(() => decodeImage(pngFrom(4, 4, new Uint8Array([1, 2, 3, 4, 5, 6])), 'z.png'), /z\.png: corrupt PNG image data/);
    const good = pngFrom(4, 4, zlibSync(raw));
    const badCrc = good.slice();
    badCrc[33 + 8]! ^= 0xff; // a byte of the IDAT body: inflates wrongly or fails the CRC
    expectPeftError(() => decodeImage(badCrc, 'crc.png'), /crc\.png: /);
    expect(decodeImage(good, 'good.png', 'grey').data.length).toBe(16);
  });

  it('readImage: missing file, folder, text file on disk', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'peft-img-'));
    writeFileSync(join(dir, 'fake.png'), 'not an image at all');
    mkdirSync(join(dir, 'sub.png'));
    await expect(readImage(join(dir, 'nope.png'))).rejects.toThrow(/nope\.png: no such file/);
    await expect(readImage(join(dir, 'sub.png'))).rejects.toThrow(/sub\.png: not a regular file/);
    await expect(readImage(join(dir, 'fake.png'))).rejects.toBeInstanceOf(PeftError);
    await expect(readImage(join(dir, 'fake.png'))).rejects.toThrow(/fake\.png: not a PNG/);
  });
});

describe('fuzzed images', () => {
  it('random corruption of PNG, JPEG and BMP files only ever gives an image or a PeftError', async () => {
    const fc = await import('fast-check');
    const img = gradient(24, 16);
    const files = { png: encodePng(img), jpg: encodeJpeg(img), bmp: encodeBmp(img), grey: encodePng({ width: 9, height: 7, channels: 1, data: new Uint8Array(63).fill(200) }) };
    fc.assert(
      fc.property(
        fc.constantFrom(...Object.keys(files)),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
        fc.option(fc.nat()),
        (kind, edits, cut) => {
          const src = files[kind as keyof typeof files];
          let b = src.slice();
          for (const [pos, v] of edits) b[pos % b.length] = v;
          if (cut !== null) b = b.subarray(0, cut % (b.length + 1));
          try {
            const out = decodeImage(b, `f.${kind}`);
            expect(out.data.length).toBe(out.width * out.height * 3);
          } catch (e) {
            if (!(e instanceof PeftError)) throw new Error(`non-PeftError for ${kind}: ${String(e)}`);
            expect((e as Error).message.startsWith(`f.${kind}: `)).toBe(true);
          }
        },
      ),
      { numRuns: 400, seed: 42 },
    );
  });
});
