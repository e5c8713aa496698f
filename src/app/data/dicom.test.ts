// DICOM reading: the files are written by the test (test/support/dicom-writer.ts)
// and read through `decodeImage`, the one place images are decoded, with the
// pixels each rule must give worked out by hand in the comments.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PeftError } from '../../core/errors.js';
import { transferSyntaxes, writeDicom, type DicomSpec } from '../../../test/support/dicom-writer.js';
import { decodeImage, readImage } from './image-io.js';
import { readImageHeader } from './image-header.js';
import { parseWindow } from './window.js';

const grey = (spec: DicomSpec, options = {}) => Array.from(decodeImage(writeDicom(spec), 'x.dcm', 'grey', options).data);
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

// 16-bit CT-like: 12 bits stored, slope 2, intercept -1024
// stored   0    100  200  300  400  500  1000  4095
// rescaled -1024 -824 -624 -424 -224 -24  976   7166
const ct: DicomSpec = {
  rows: 2, columns: 4, bitsAllocated: 16, bitsStored: 12, rescaleSlope: 2, rescaleIntercept: -1024,
  pixels: [0, 100, 200, 300, 400, 500, 1000, 4095],
};

describe('DICOM', () => {
  it('16-bit monochrome: rescale slope/intercept, then the file window, --window over it, min/max without one', () => {
    // file window C=-424 W=801: c-0.5 = -424.5, w-1 = 800, so -824.5..-24.5 spans 0..255:
    // -824 -> (0.5/800)*255 = 0.16 -> 0; -624 -> 63.9 -> 64; -424 -> 127.7 -> 128; -224 -> 191.4 -> 191; -24 above -> 255
    expect(grey({ ...ct, windowCenter: -424, windowWidth: 801 })).toEqual([0, 0, 64, 128, 191, 255, 255, 255]);
    // --window 0,2048 wins: -1023.5..1023.5 (w-1 = 2047): -824 -> 24.9; -624 -> 49.8; -424 -> 74.7; -224 -> 99.7; -24 -> 124.6; 976 -> 249.1
    expect(grey({ ...ct, windowCenter: -424, windowWidth: 801 }, { window: parseWindow('0,2048') })).toEqual([0, 25, 50, 75, 100, 125, 249, 255]);
    // no window: min -1024 -> 0, max 7166 -> 255, linear between: (x + 1024) / 8190 * 255
    expect(grey(ct)).toEqual([0, 6, 12, 19, 25, 31, 62, 255]);
  });

  it('signed values with Bits Stored < Bits Allocated: the high bits are masked off and the sign taken from bit 11', () => {
    // 12-bit two's complement in 16 bits, with junk in the 4 unused high bits
    const values = [-2048, -1, 0, 2047];
    const pixels = values.map((v) => (v & 0xfff) | 0xa000);
    // min/max window: (x + 2048) / 4095 * 255 -> 0, 127.5 - 0.06 -> 127, 127.5 + 0.06 -> 128, 255
    expect(grey({ rows: 1, columns: 4, bitsAllocated: 16, bitsStored: 12, highBit: 11, pixelRepresentation: 1, pixels })).toEqual([0, 127, 128, 255]);
    // High Bit 15 with 12 bits stored: the values sit in the top bits
    expect(grey({ rows: 1, columns: 2, bitsAllocated: 16, bitsStored: 12, highBit: 15, pixels: [0x0010, 0xfff0] })).toEqual([0, 255]);
  });

  it('MONOCHROME1 is inverted; 8-bit unsigned data without rescale is taken as it is', () => {
    const px = [0, 10, 200, 255];
    expect(grey({ rows: 2, columns: 2, bitsAllocated: 8, photometric: 'MONOCHROME2', pixels: px })).toEqual([0, 10, 200, 255]);
    expect(grey({ rows: 2, columns: 2, bitsAllocated: 8, photometric: 'MONOCHROME1', pixels: px })).toEqual([255, 245, 55, 0]);
    // and MONOCHROME1 16-bit under its min/max window: 0 -> 255, 1000 -> 0
    expect(grey({ rows: 1, columns: 2, photometric: 'MONOCHROME1', pixels: [0, 1000] })).toEqual([255, 0]);
  });

  it('RGB, interleaved (planar configuration 0) and planar (1), and YBR_FULL', () => {
    const rgb = [10, 20, 30, 40, 50, 60];
    const spec = { rows: 1, columns: 2, samplesPerPixel: 3 as const, bitsAllocated: 8 as const };
    const read = (s: DicomSpec) => Array.from(decodeImage(writeDicom(s), 'c.dcm', 'rgb').data);
    expect(read({ ...spec, pixels: rgb, planarConfiguration: 0 })).toEqual(rgb);
    expect(read({ ...spec, pixels: [10, 40, 20, 50, 30, 60], planarConfiguration: 1 })).toEqual(rgb);
    // the VOI window is for grey images: 8-bit colour ignores --window
    expect(Array.from(decodeImage(writeDicom({ ...spec, pixels: rgb }), 'c.dcm', 'rgb', { window: parseWindow('20,10') }).data)).toEqual(rgb);
    // grey from RGB by PIL's luma: (10*19595 + 20*38470 + 30*7471 + 32768) >> 16 = 18
    expect(Array.from(decodeImage(writeDicom({ ...spec, pixels: rgb }), 'c.dcm', 'grey').data)).toEqual([18, 48]);
    // YBR_FULL: Y=100, Cb=Cr=128 is grey 100; Y=76, Cb=85, Cr=255 is about pure red
    const ybr = read({ ...spec, photometric: 'YBR_FULL', pixels: [100, 128, 128, 76, 85, 255] });
    expect(ybr.slice(0, 3)).toEqual([100, 100, 100]);
    expect(ybr[3]).toBeGreaterThan(250);
    expect(ybr[4]).toBeLessThan(5);
    expect(ybr[5]).toBeLessThan(5);
  });

  it('reads implicit VR, deflated and big endian files the same as explicit VR little endian', () => {
    const want = grey({ ...ct, windowCenter: -424, windowWidth: 801 });
    for (const ts of [transferSyntaxes.implicitLE, transferSyntaxes.deflatedLE, transferSyntaxes.explicitBE]) {
      expect(grey({ ...ct, windowCenter: -424, windowWidth: 801, transferSyntax: ts }), ts).toEqual(want);
    }
  });

  it('multi-frame: refused without --frame, with the count; a frame by its 1-based number; out of range refused', () => {
    const frames = { rows: 2, columns: 2, bitsAllocated: 8 as const, frames: 3, pixels: Array.from({ length: 12 }, (_, i) => Math.floor(i / 4) * 100 + (i % 4)) };
    const b = writeDicom(frames);
    refused(() => decodeImage(b, 'cine.dcm', 'grey'), /^cine\.dcm: holds 3 frames; choose one with --frame N \(1 to 3\)$/);
    expect(Array.from(decodeImage(b, 'cine.dcm', 'grey', { frame: 2 }).data)).toEqual([100, 101, 102, 103]);
    expect(Array.from(decodeImage(b, 'cine.dcm', 'grey', { frame: 3 }).data)).toEqual([200, 201, 202, 203]);
    for (const frame of [0, 4, 1.5]) refused(() => decodeImage(b, 'cine.dcm', 'grey', { frame }), new RegExp(`^cine\\.dcm: --frame ${frame} is out of range \\(the file holds 3 frames: 1 to 3\\)$`));
    // a single-frame file takes --frame 1 and refuses --frame 2
    expect(grey(ct, { frame: 1 })).toEqual(grey(ct));
    refused(() => grey(ct, { frame: 2 }), /--frame 2 is out of range \(the file holds 1 frame: 1 to 1\)/);
    expect(readImageHeader(b, 'cine.dcm')).toMatchObject({ format: 'dicom', width: 2, height: 2, frames: 3 });
  });

  it('compressed transfer syntaxes: one line naming the file, the UID and its name', () => {
    refused(() => decodeImage(writeDicom({ ...ct, transferSyntax: transferSyntaxes.jpegBaseline }), 'scan.dcm'), /^scan\.dcm: DICOM transfer syntax 1\.2\.840\.10008\.1\.2\.4\.50 \(JPEG Baseline \(Process 1\)\) is not supported/);
    refused(() => decodeImage(writeDicom({ ...ct, transferSyntax: transferSyntaxes.jpeg2000 }), 'j2k.dcm'), /1\.2\.840\.10008\.1\.2\.4\.91 \(JPEG 2000 Image Compression\) is not supported/);
    refused(() => decodeImage(writeDicom({ ...ct, transferSyntax: transferSyntaxes.rle }), 'rle.dcm'), /\(RLE Lossless\) is not supported/);
    refused(() => decodeImage(writeDicom({ ...ct, transferSyntax: '1.2.3.4' }), 'odd.dcm'), /1\.2\.3\.4 \(not a standard transfer syntax\) is not supported/);
  });

  it('hostile headers are refused by the header, before any pixel is read, with the limit named', () => {
    const lying = (extra: DicomSpec['extra']) => writeDicom({ ...ct, extra });
    const huge = lying([{ tag: 0x00280010, vr: 'US', value: [65535] }, { tag: 0x00280011, vr: 'US', value: [65535] }]);
    refused(() => readImageHeader(huge, 'huge.dcm'), /^huge\.dcm: image dimensions 65535x65535 exceed the limit of 16384x16384$/);
    refused(() => decodeImage(huge, 'huge.dcm'), /^huge\.dcm: image dimensions 65535x65535 exceed the limit/);
    refused(() => decodeImage(lying([{ tag: 0x00280008, vr: 'IS', value: '1000000' }]), 'many.dcm'), /^many\.dcm: DICOM declares 1000000 frames, more than the limit of 10000$/);
    refused(() => decodeImage(lying([{ tag: 0x00280008, vr: 'IS', value: '9' }]), 'few.dcm', 'grey', { frame: 1 }), /^few\.dcm: truncated DICOM \(pixel data holds 16 bytes, 9 frames of 4x2x1 at 16 bits need 144\)$/);
    refused(() => decodeImage(lying([{ tag: 0x00280100, vr: 'US', value: [32] }]), 'b32.dcm'), /^b32\.dcm: DICOM with 32 bits allocated per sample is not supported/);
    refused(() => decodeImage(lying([{ tag: 0x00280004, vr: 'CS', value: 'PALETTE COLOR' }]), 'pal.dcm'), /^pal\.dcm: DICOM photometric interpretation PALETTE COLOR with 1 samples per pixel is not supported/);
    refused(() => decodeImage(writeDicom(ct).subarray(0, 300), 'cut.dcm'), /^cut\.dcm: /);
  });

  it('readImage dispatches by the bytes, not the name', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'peft-dicom-'));
    const f = join(dir, 'IM0001'); // DICOM files often have no extension
    writeFileSync(f, writeDicom({ rows: 1, columns: 2, bitsAllocated: 8, pixels: [7, 9] }));
    expect(Array.from((await readImage(f, 'grey')).data)).toEqual([7, 9]);
    expect(Array.from((await readImage(f, 'rgb')).data)).toEqual([7, 7, 7, 9, 9, 9]);
  });
});
