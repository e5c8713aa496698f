// DICOM and TIFF files under hostile input: mutations of valid files of every
// layout the readers accept, and TIFFs rebuilt around lying directories
// (dimensions, strip offsets and counts, compression, page chains, sub-IFD
// pointers), decoded as images with a frame chosen. Each case must decode or
// be one PeftError line naming the file (`test/support/fuzz-harness.ts`).
import { describe, it } from 'vitest';
import fc from 'fast-check';
import { zlibSync } from 'fflate';
import { decodeImage } from '../../src/app/data/image-io.js';
import { transferSyntaxes, writeDicom, type DicomSpec } from '../support/dicom-writer.js';
import { fuzz, hostileCase, mutatedArb, runs, verdict } from '../support/fuzz-harness.js';
import { lzwEncode, writeTiff, type TiffPage } from '../support/tiff-writer.js';

const FILE = 'scan.dcm';
const ramp = (n: number, k = 37) => Array.from({ length: n }, (_, i) => (i * k) & 0xfff);

function dicomSeeds(): Uint8Array[] {
  const ct: DicomSpec = { rows: 6, columns: 5, bitsAllocated: 16, bitsStored: 12, rescaleSlope: 2, rescaleIntercept: -1024, windowCenter: 40, windowWidth: 400, pixels: ramp(30) };
  return [
    writeDicom(ct),
    writeDicom({ ...ct, transferSyntax: transferSyntaxes.implicitLE }),
    writeDicom({ ...ct, transferSyntax: transferSyntaxes.deflatedLE }),
    writeDicom({ ...ct, transferSyntax: transferSyntaxes.explicitBE, pixelRepresentation: 1 }),
    writeDicom({ rows: 3, columns: 4, samplesPerPixel: 3, bitsAllocated: 8, planarConfiguration: 1, frames: 2, pixels: ramp(72, 9).map((v) => v & 255) }),
    writeDicom({ rows: 4, columns: 4, bitsAllocated: 8, photometric: 'MONOCHROME1', pixels: ramp(16, 15).map((v) => v & 255) }),
  ];
}

const page16: TiffPage = { width: 9, height: 7, bitsPerSample: 16, data: ramp(63, 977) };

function tiffSeeds(): Uint8Array[] {
  return [
    writeTiff([page16]),
    writeTiff([{ ...page16, rowsPerStrip: 2, compression: 5 }]),
    writeTiff([{ ...page16, tile: { width: 16, height: 16 }, compression: 8 }], false),
    writeTiff([{ width: 5, height: 3, samplesPerPixel: 3, data: ramp(45, 13).map((v) => v & 255), rowsPerStrip: 1 }, page16]),
    writeTiff([{ width: 4, height: 4, samplesPerPixel: 2, data: ramp(32, 11).map((v) => v & 255), compression: 5 }]),
  ];
}

/** TIFFs whose directory entries lie: any tag the readers use, any value, any type. */
const lyingTiffArb = fc
  .record({
    tags: fc.array(
      fc.tuple(
        fc.constantFrom(256, 257, 258, 259, 262, 273, 274, 277, 278, 279, 284, 317, 320, 322, 323, 324, 325, 338, 339, 0x8769, 0x8825),
        fc.constantFrom(3 as const, 4 as const),
        fc.array(fc.oneof(fc.nat(70000), fc.constantFrom(0, 1, 2, 5, 8, 16, 32, 65535, 0xffffffff, 2 ** 31)), { minLength: 0, maxLength: 6 }),
      ),
      { minLength: 1, maxLength: 4 },
    ),
    compression: fc.constantFrom(1 as const, 5 as const, 8 as const),
    tiled: fc.boolean(),
    bigEndian: fc.boolean(),
  })
  .map(({ tags, compression, tiled, bigEndian }) =>
    writeTiff([{ ...page16, compression, rowsPerStrip: 3, tile: tiled ? { width: 16, height: 16 } : undefined, extraTags: tags }], !bigEndian),
  );

/** Strips replaced by arbitrary LZW or deflate streams (bombs of repeated bytes included). */
const bombTiffArb = fc
  .record({ fill: fc.nat(255), size: fc.constantFrom(10, 1000, 100_000, 400_000), lzw: fc.boolean(), cut: fc.nat(50) })
  .map(({ fill, size, lzw, cut }) => {
    const raw = new Uint8Array(size).fill(fill);
    const chunk = lzw ? lzwEncode(raw) : zlibSync(raw);
    return writeTiff([{ ...page16, rowsPerStrip: 7, compression: lzw ? 5 : 8, rawChunks: [chunk.subarray(0, Math.max(1, chunk.length - cut))] }]);
  });

describe('DICOM and TIFF images under hostile input', () => {
  it('mutated DICOM files (every transfer syntax read, RGB planar, multi-frame, MONOCHROME1)', () => {
    fuzz('images', 'mutated DICOM files', mutatedArb(dicomSeeds()), (b) => verdict(hostileCase(FILE, b.length, () => decodeImage(b, FILE, 'rgb', { frame: 1 }))), runs(400));
  });

  it('mutated TIFF files (strips, tiles, LZW, deflate, big endian, multi-page, alpha)', () => {
    fuzz('images', 'mutated TIFF files', mutatedArb(tiffSeeds()), (b) => verdict(hostileCase(FILE, b.length, () => decodeImage(b, FILE, 'grey', { frame: 1 }))), runs(400));
  });

  it('TIFFs with lying directory entries', () => {
    fuzz('images', 'TIFFs with lying directories', lyingTiffArb, (b) => verdict(hostileCase(FILE, b.length, () => decodeImage(b, FILE, 'rgb', { frame: 1 }))), runs(300));
  });

  it('TIFF strips replaced by truncated or exploding LZW and deflate streams', () => {
    fuzz('images', 'TIFF decompression bombs', bombTiffArb, (b) => verdict(hostileCase(FILE, b.length, () => decodeImage(b, FILE, 'grey'))), runs(100));
  });
});
