// TIFF reading: the files are written by the test (test/support/tiff-writer.ts)
// and read through `decodeImage`, with the pixels each rule must give worked
// out by hand in the comments.
import { describe, expect, it } from 'vitest';
import { zlibSync } from 'fflate';
import { PeftError } from '../../core/errors.js';
import { lzwEncode, writeTiff, type TiffPage } from '../../../test/support/tiff-writer.js';
import { decodeImage } from './image-io.js';
import { readImageHeader } from './image-header.js';
import { parseWindow } from './window.js';

const read = (b: Uint8Array, mode: 'grey' | 'rgb' = 'grey', options = {}) => Array.from(decodeImage(b, 'x.tif', mode, options).data);
const refused = (f: () => unknown, re: RegExp) => {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(PeftError);
  expect((err as Error).message).toMatch(re);
};

const page16: TiffPage = { width: 4, height: 1, bitsPerSample: 16, data: [1000, 2000, 3000, 5000] };

/** A 20x18 16-bit gradient, to cross strips and tiles. */
const big: TiffPage = { width: 20, height: 18, bitsPerSample: 16, data: Array.from({ length: 360 }, (_, i) => 300 + i * 37) };

describe('TIFF', () => {
  it('16-bit grey: min/max to 0..255 by default, --window when given', () => {
    // (x - 1000) / 4000 * 255: 0, 63.75, 127.5, 255
    expect(read(writeTiff([page16]))).toEqual([0, 64, 128, 255]);
    // --window 2000,1001: 1499.5..2499.5 spans 0..255; 2000 -> (0.5/1000 + 0.5) * 255 = 127.6
    expect(read(writeTiff([page16]), 'grey', { window: parseWindow('2000,1001') })).toEqual([0, 128, 255, 255]);
    expect(readImageHeader(writeTiff([page16]), 'x.tif')).toMatchObject({ format: 'tiff', width: 4, height: 1, frames: 1 });
  });

  it('the same pixels whatever the layout: big endian, one-row strips, tiles, LZW, deflate', () => {
    const want = read(writeTiff([big]));
    expect(new Set(want).size).toBeGreaterThan(100);
    expect(read(writeTiff([big], false))).toEqual(want);
    expect(read(writeTiff([{ ...big, rowsPerStrip: 1 }]))).toEqual(want);
    expect(read(writeTiff([{ ...big, rowsPerStrip: 5, compression: 5 }]))).toEqual(want);
    expect(read(writeTiff([{ ...big, rowsPerStrip: 7, compression: 8 }], false))).toEqual(want);
    expect(read(writeTiff([{ ...big, tile: { width: 16, height: 16 } }]))).toEqual(want);
    expect(read(writeTiff([{ ...big, tile: { width: 16, height: 16 }, compression: 5 }]))).toEqual(want);
  });

  it('signed 16-bit and 32-bit float samples go through the min/max window', () => {
    // -100 -> 0, 0 -> 100/300*255 = 85, 200 -> 255
    expect(read(writeTiff([{ width: 3, height: 1, bitsPerSample: 16, sampleFormat: 2, data: [-100, 0, 200] }]))).toEqual([0, 85, 255]);
    expect(read(writeTiff([{ width: 3, height: 1, bitsPerSample: 32, data: [0.25, 0.5, 1.25] }]))).toEqual([0, 64, 255]);
  });

  it('8-bit grey and RGB are taken as they are; alpha is dropped; WhiteIsZero is inverted', () => {
    expect(read(writeTiff([{ width: 3, height: 1, data: [0, 77, 255] }]))).toEqual([0, 77, 255]);
    expect(read(writeTiff([{ width: 3, height: 1, data: [0, 77, 255], photometric: 0 }]))).toEqual([255, 178, 0]);
    const rgb = [10, 20, 30, 200, 100, 0];
    expect(read(writeTiff([{ width: 2, height: 1, samplesPerPixel: 3, data: rgb }]), 'rgb')).toEqual(rgb);
    // a window is for grey values: 8-bit colour ignores it, 8-bit grey follows it (C 50.5, W 101: 0..100 -> 0..255)
    expect(read(writeTiff([{ width: 2, height: 1, samplesPerPixel: 3, data: rgb }]), 'rgb', { window: parseWindow('50,101') })).toEqual(rgb);
    expect(read(writeTiff([{ width: 3, height: 1, data: [0, 50, 200] }]), 'grey', { window: parseWindow('50.5,101') })).toEqual([0, 128, 255]);
    expect(read(writeTiff([{ width: 2, height: 1, samplesPerPixel: 4, data: [10, 20, 30, 255, 200, 100, 0, 128] }]), 'rgb')).toEqual(rgb);
    expect(read(writeTiff([{ width: 2, height: 1, samplesPerPixel: 2, data: [10, 255, 90, 0] }]))).toEqual([10, 90]);
    // an 8-bit palette: entries are 16-bit, all reds, then greens, then blues (index 5: 65535, 32896, 0 -> 255, 128, 0)
    const map = Array(768).fill(0);
    [map[5], map[256 + 5], map[512 + 5]] = [65535, 32896, 0];
    expect(read(writeTiff([{ width: 2, height: 1, data: [5, 0], photometric: 3, extraTags: [[320, 3, map]] }]), 'rgb')).toEqual([255, 128, 0, 0, 0, 0]);
    // 16-bit RGB: one min/max window over all three channels (min 0 -> 0, max 1000 -> 255)
    expect(read(writeTiff([{ width: 1, height: 2, samplesPerPixel: 3, bitsPerSample: 16, data: [0, 500, 1000, 1000, 1000, 0] }]), 'rgb')).toEqual([0, 128, 255, 255, 255, 0]);
  });

  it('multi-page: refused without --frame, with the count; a page by its 1-based number; out of range refused', () => {
    const pages = [0, 1, 2].map((k) => ({ width: 2, height: 1, data: [k * 100, k * 100 + 1] }));
    const b = writeTiff(pages);
    refused(() => decodeImage(b, 'stack.tif'), /^stack\.tif: holds 3 pages; choose one with --frame N \(1 to 3\)$/);
    expect(read(b, 'grey', { frame: 2 })).toEqual([100, 101]);
    expect(read(b, 'grey', { frame: 3 })).toEqual([200, 201]);
    refused(() => decodeImage(b, 'stack.tif', 'grey', { frame: 4 }), /^stack\.tif: --frame 4 is out of range \(the file holds 3 pages: 1 to 3\)$/);
    expect(readImageHeader(b, 'stack.tif').frames).toBe(3);
  });

  it('hostile headers are refused by the header, with the limit named; loops, lies and bombs before decoding', () => {
    const lying = (p: Partial<TiffPage>) => writeTiff([{ ...page16, ...p }]);
    const huge = lying({ extraTags: [[256, 4, [65535]], [257, 4, [65535]]] });
    refused(() => readImageHeader(huge, 'huge.tif'), /^huge\.tif: image dimensions 65535x65535 exceed the limit of 16384x16384$/);
    refused(() => decodeImage(huge, 'huge.tif'), /^huge\.tif: image dimensions 65535x65535 exceed the limit/);
    // the directory's next-page pointer pointing back at itself
    const loop = writeTiff([page16]);
    const dv = new DataView(loop.buffer);
    const ifd = dv.getUint32(4, true);
    dv.setUint32(ifd + 2 + dv.getUint16(ifd, true) * 12, ifd, true);
    refused(() => decodeImage(loop, 'loop.tif'), /^loop\.tif: corrupt TIFF \(directory at byte \d+ is referenced twice: a loop\)$/);
    refused(() => decodeImage(lying({ extraTags: [[279, 4, [1]]] }), 'short.tif'), /^short\.tif: truncated TIFF \(a strip or tile holds 1 of 8 bytes\)$/);
    refused(() => decodeImage(lying({ extraTags: [[273, 4, [1 << 30]]] }), 'far.tif'), /^far\.tif: truncated TIFF \(image data at byte 1073741824 runs past the end of the file\)$/);
    refused(() => decodeImage(lying({ extraTags: [[259, 3, [32773]]] }), 'pack.tif'), /^pack\.tif: TIFF compression PackBits \(32773\) is not supported/);
    refused(() => decodeImage(lying({ extraTags: [[262, 3, [5]]] }), 'cmyk.tif'), /^cmyk\.tif: TIFF colour model CMYK/);
    // 200 kB of zeros, LZW- or deflate-compressed into a few hundred bytes, as the strip of a 4x1 page
    const zeros = new Uint8Array(200_000);
    for (const [compression, chunk] of [[5, lzwEncode(zeros)], [8, zlibSync(zeros)]] as const) {
      expect(chunk.length).toBeLessThan(2000);
      refused(() => decodeImage(lying({ compression, rawChunks: [chunk] }), 'bomb.tif'), /^bomb\.tif: corrupt TIFF \(a strip or tile decompresses to more than the 8 bytes its size implies\)$/);
    }
    const big = writeTiff([page16]);
    big[2] = 43;
    refused(() => decodeImage(big, 'b.tif'), /^b\.tif: BigTIFF is not supported/);
  });
});
