// A REFUGE-layout folder whose images are TIFF and DICOM, read by the dataset
// loader that `peft train` and `peft eval` use: each sample must come out the
// same as from the JPEG it was made from (8-bit RGB is taken as it is, a 16-bit
// TIFF through the window passed as the loader's `image` option).
import { beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeDicom } from '../../../test/support/dicom-writer.js';
import { writeTiff } from '../../../test/support/tiff-writer.js';
import { readImage } from './image-io.js';
import { openRefuge } from './refuge.js';
import { writeSyntheticFundus } from './synthetic-fundus.js';

let root: string;
const opts = { imageSize: 32, outSize: 8, memoryCache: false } as const;

beforeAll(async () => {
  root = join(mkdtempSync(join(tmpdir(), 'peft-medical-')), 'refuge');
  await writeSyntheticFundus(root, { n: 5, size: 40, seed: 7 });
});

describe('REFUGE layout with TIFF and DICOM images', () => {
  it('the loader finds .tif, .dcm and .tiff images and reads them as the JPEGs they were made from', async () => {
    const before = await openRefuge(root, { ...opts, split: 'train' });
    const want = await Promise.all([0, 1, 2].map((i) => before.get(i)));
    const names = before.entries.map((e) => e.name);
    const dir = (i: number) => join(root, 'Training-400', names[i]!);
    const pixels = await Promise.all([0, 1, 2].map((i) => readImage(join(dir(i), `${names[i]}.jpg`), 'rgb')));
    // sample 0: 8-bit RGB TIFF; sample 1: DICOM, RGB with separate planes; sample 2: 16-bit RGB TIFF (v * 257)
    const p0 = pixels[0]!;
    writeFileSync(join(dir(0), `${names[0]}.tif`), writeTiff([{ width: p0.width, height: p0.height, samplesPerPixel: 3, data: p0.data, rowsPerStrip: 7 }]));
    const p1 = pixels[1]!;
    const n1 = p1.width * p1.height;
    const planar = Array.from({ length: n1 * 3 }, (_, i) => p1.data[(i % n1) * 3 + Math.floor(i / n1)]!);
    writeFileSync(join(dir(1), `${names[1]}.dcm`), writeDicom({ rows: p1.height, columns: p1.width, samplesPerPixel: 3, bitsAllocated: 8, planarConfiguration: 1, pixels: planar }));
    const p2 = pixels[2]!;
    writeFileSync(join(dir(2), `${names[2]}.tiff`), writeTiff([{ width: p2.width, height: p2.height, samplesPerPixel: 3, bitsPerSample: 16, data: Array.from(p2.data, (v) => v * 257), compression: 8 }]));
    for (const i of [0, 1, 2]) rmSync(join(dir(i), `${names[i]}.jpg`));

    // the window that maps v * 257 back to v: C - 0.5 = 127.5 * 257, W - 1 = 255 * 257
    const after = await openRefuge(root, { ...opts, split: 'train', image: { window: { center: 32768, width: 65536 } } });
    expect(after.entries.map((e) => e.image.slice(e.image.lastIndexOf('.')))).toEqual(['.tif', '.dcm', '.tiff', '.jpg']);
    for (const i of [0, 1, 2]) {
      const got = await after.get(i);
      expect(Array.from(got.image), names[i]).toEqual(Array.from(want[i]!.image));
      expect(Array.from(got.target)).toEqual(Array.from(want[i]!.target));
    }
    // without the window, the 16-bit TIFF is stretched from its own min/max instead
    const plain = await openRefuge(root, { ...opts, split: 'train' });
    expect(Array.from((await plain.get(2)).image)).not.toEqual(Array.from(want[2]!.image));
    expect(Array.from((await plain.get(0)).image)).toEqual(Array.from(want[0]!.image));
  });
});
