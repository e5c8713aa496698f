import { beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PeftError } from '../../core/errors.js';
import { encodeJpeg, encodePng } from './image-io.js';
import { openIsic } from './isic.js';

let root: string;

function lesion(size: number, cx: number, cy: number, r: number): Uint8Array {
  const m = new Uint8Array(size * size);
  for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) if (Math.hypot(x + 0.5 - cx, y + 0.5 - cy) < r) m[y * size + x] = 255;
  return m;
}

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'peft-isic-'));
  mkdirSync(join(root, 'ISBI2016_ISIC_Part1_Training_Data'));
  mkdirSync(join(root, 'ISBI2016_ISIC_Part1_Training_GroundTruth'));
  for (const [k, name] of ['ISIC_0000000', 'ISIC 0000001'].entries()) {
    const rgb = new Uint8Array(40 * 30 * 3).map((_, i) => (i * (k + 3)) % 256);
    writeFileSync(join(root, 'ISBI2016_ISIC_Part1_Training_Data', `${name}.jpg`), encodeJpeg({ width: 40, height: 30, channels: 3, data: rgb }));
    writeFileSync(join(root, 'ISBI2016_ISIC_Part1_Training_GroundTruth', `${name}_Segmentation.png`), encodePng({ width: 40, height: 40, channels: 1, data: lesion(40, 20, 18 + k * 4, 10) }));
  }
  writeFileSync(
    join(root, 'train.csv'),
    ',img,seg\n' +
      '0,ISBI2016_ISIC_Part1_Training_Data/ISIC_0000000.jpg,ISBI2016_ISIC_Part1_Training_GroundTruth/ISIC_0000000_Segmentation.png\n' +
      '1,"ISBI2016_ISIC_Part1_Training_Data/ISIC 0000001.jpg","ISBI2016_ISIC_Part1_Training_GroundTruth/ISIC 0000001_Segmentation.png"\n',
  );
});

describe('ISIC loader', () => {
  it('reads the reference CSV layout (index column, quoted paths) into 1-channel soft targets', async () => {
    const ds = await openIsic(join(root, 'train.csv'), { imageSize: 32, outSize: 16 });
    expect(ds.length).toBe(2);
    expect(ds.channels).toEqual(['lesion']);
    const s = await ds.get(1);
    expect(s.name).toBe('ISIC 0000001');
    expect(s.image.length).toBe(32 * 32 * 3);
    expect(s.target.length).toBe(16 * 16);
    const sum = s.target.reduce((a, b) => a + b, 0);
    expect(sum / 256).toBeGreaterThan(0.1); // a disc of radius 10/40 covers ~20%
    expect(sum / 256).toBeLessThan(0.3);
    expect(s.target[8 * 16 + 8]).toBeCloseTo(1, 5);
    expect(s.target[0]).toBe(0);
  });

  it('two-column CSVs with named headers work too', async () => {
    writeFileSync(join(root, 'two.csv'), 'mask,image\r\nISBI2016_ISIC_Part1_Training_GroundTruth/ISIC_0000000_Segmentation.png,ISBI2016_ISIC_Part1_Training_Data/ISIC_0000000.jpg\r\n');
    const ds = await openIsic(join(root, 'two.csv'), { imageSize: 16 });
    expect(ds.entries[0]!.image).toMatch(/ISIC_0000000\.jpg$/);
    expect((await ds.get(0)).target.length).toBe(256);
  });

  it('hostile CSVs: outside paths, absolute paths, symlinks out, missing files, bad rows', async () => {
    const csv = (name: string, body: string) => {
      writeFileSync(join(root, name), body);
      return join(root, name);
    };
    const outside = csv('out.csv', ',img,seg\n0,../../etc/passwd,ISBI2016_ISIC_Part1_Training_GroundTruth/ISIC_0000000_Segmentation.png\n');
    await expect(openIsic(outside)).rejects.toThrow(PeftError);
    await expect(openIsic(outside)).rejects.toThrow(/out\.csv:2: path '\.\.\/\.\.\/etc\/passwd' points outside the CSV's folder/);
    await expect(openIsic(csv('abs.csv', 'img,seg\n/etc/hostname,x.png\n'))).rejects.toThrow(/abs\.csv:2: absolute path/);
    await expect(openIsic(csv('miss.csv', 'img,seg\nnope.jpg,x.png\n'))).rejects.toThrow(/nope\.jpg: no such file \(.*miss\.csv:2\)/);
    symlinkSync('/etc', join(root, 'escape'));
    await expect(openIsic(csv('link.csv', 'img,seg\nescape/hostname,escape/hostname\n'))).rejects.toThrow(/link\.csv:2: path 'escape\/hostname' resolves outside/);
    await expect(openIsic(csv('ragged.csv', 'img,seg\na.jpg\n'))).rejects.toThrow(/ragged\.csv:2: expected 2 fields like the header, got 1/);
    await expect(openIsic(csv('empty.csv', ''))).rejects.toThrow(/empty\.csv: no data rows/);
    await expect(openIsic(csv('quote.csv', 'img,seg\n"a.jpg,b.png\n'))).rejects.toThrow(/quote\.csv:2: malformed CSV/);
    await expect(openIsic(join(root, 'nothere.csv'))).rejects.toThrow(/nothere\.csv: no such file/);
    // a CSV pointing at a text file named .png decodes to a clear error on first use
    writeFileSync(join(root, 'fake.png'), 'text');
    const ds = await openIsic(csv('fake.csv', 'img,seg\nISBI2016_ISIC_Part1_Training_Data/ISIC_0000000.jpg,fake.png\n'));
    await expect(ds.get(0)).rejects.toThrow(/fake\.png: not a PNG, JPEG, BMP, DICOM or TIFF image/);
  });
});
