import { beforeAll, describe, expect, it } from 'vitest';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { PeftError } from '../../core/errors.js';
import { loadBatch, toBatch } from './dataset.js';
import { Rng } from './random.js';
import { openRefuge } from './refuge.js';
import { renderFundusSample, writeSyntheticFundus } from './synthetic-fundus.js';

let root: string;
let data: string;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'peft-refuge-'));
  data = join(root, 'synth');
  await writeSyntheticFundus(data, { n: 5, size: 48, seed: 3 });
});

function allFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(dir.length)).sort();
}

describe('synthetic fundus generator', () => {
  it('writes the exact REFUGE layout, 80/20, deterministic bytes from the seed', async () => {
    const files = allFiles(data);
    expect(files.filter((f) => f.endsWith('.jpg'))).toEqual(['/Test-400/S0005/S0005.jpg', '/Training-400/S0001/S0001.jpg', '/Training-400/S0002/S0002.jpg', '/Training-400/S0003/S0003.jpg', '/Training-400/S0004/S0004.jpg']);
    expect(files.filter((f) => f.includes('/S0001/'))).toHaveLength(15);
    expect(files).toContain('/Training-400/S0001/S0001_seg_cup_7.png');
    expect(files).toContain('/Training-400/S0001/S0001_seg_disc_1.png');
    const again = join(root, 'again');
    await writeSyntheticFundus(again, { n: 5, size: 48, seed: 3 });
    for (const f of files) expect(readFileSync(join(again, f)).equals(readFileSync(join(data, f))), f).toBe(true);
    const other = renderFundusSample(4, 0, 48);
    expect(Buffer.from(other.image).equals(Buffer.from(renderFundusSample(3, 0, 48).image))).toBe(false);
  });

  it('masks are 0/255, the cup lies inside the disc, raters differ a little', () => {
    const s = renderFundusSample(0, 2, 96);
    for (let k = 0; k < 7; k++) {
      let cup = 0, disc = 0, bad = 0;
      for (let i = 0; i < s.cup[k]!.length; i++) {
        const c = s.cup[k]![i]!, d = s.disc[k]![i]!;
        if ((c !== 0 && c !== 255) || (d !== 0 && d !== 255) || (c && !d)) bad++;
        cup += c ? 1 : 0;
        disc += d ? 1 : 0;
      }
      expect(bad).toBe(0);
      expect(cup).toBeGreaterThan(5);
      expect(disc).toBeGreaterThan(cup);
    }
    expect(Buffer.from(s.disc[0]!).equals(Buffer.from(s.disc[1]!))).toBe(false);
    // the disc is brighter than the fundus around it
    const lum = (i: number) => s.image[i * 3]! + s.image[i * 3 + 1]! + s.image[i * 3 + 2]!;
    let inside = 0, ni = 0, ring = 0, nr = 0;
    const { cx, cy, ax } = s.truth.disc;
    for (let y = 0; y < 96; y++) for (let x = 0; x < 96; x++) {
      const r = Math.hypot(x + 0.5 - cx, y + 0.5 - cy) / ax;
      if (r < 0.6) { inside += lum(y * 96 + x); ni++; } else if (r > 1.6 && r < 2.2) { ring += lum(y * 96 + x); nr++; }
    }
    expect(inside / ni).toBeGreaterThan(ring / nr + 30);
  });
});

describe('REFUGE loader', () => {
  it('loads samples with soft (cup, disc) targets at out size, sorted by name', async () => {
    const ds = await openRefuge(data, { imageSize: 32, outSize: 16 });
    expect(ds.length).toBe(4);
    expect(ds.channels).toEqual(['cup', 'disc']);
    const s = await ds.get(0);
    expect(s.name).toBe('S0001');
    expect(s.image.length).toBe(32 * 32 * 3);
    expect(s.target.length).toBe(16 * 16 * 2);
    let maxDisc = 0, soft = 0;
    for (let i = 0; i < 256; i++) {
      const cup = s.target[i * 2]!, disc = s.target[i * 2 + 1]!;
      expect(cup).toBeGreaterThanOrEqual(0);
      expect(disc).toBeLessThanOrEqual(1);
      expect(cup).toBeLessThanOrEqual(disc + 1e-6);
      maxDisc = Math.max(maxDisc, disc);
      if (disc > 0 && disc < 1) soft++;
    }
    expect(maxDisc).toBeGreaterThan(0.5);
    expect(soft).toBeGreaterThan(0);
    // at image size (no second resize) the raters' agreement reaches exactly 1
    const full = await (await openRefuge(data, { imageSize: 48, outSize: 48 })).get(0);
    expect(Math.max(...full.target)).toBe(1);
    expect(new Set(Array.from(full.target).map((v) => Math.round(v * 7))).size).toBeGreaterThan(2);
    for (const v of s.image) expect(v >= 0 && v <= 255).toBe(true);
    const test = await openRefuge(data, { split: 'test', imageSize: 32, outSize: 8 });
    expect(test.length).toBe(1);
    expect((await test.get(0)).name).toBe('S0005');
  });

  it('augments deterministically from the rng, and batches into tensors', async () => {
    const ds = await openRefuge(data, { imageSize: 32, outSize: 16, augment: true });
    const plain = await ds.get(1);
    const a = await ds.get(1, new Rng(9));
    const b = await ds.get(1, new Rng(9));
    const c = await ds.get(1, new Rng(10));
    expect(Array.from(a.image)).toEqual(Array.from(b.image));
    expect(Array.from(a.target)).toEqual(Array.from(b.target));
    expect(Array.from(a.image)).not.toEqual(Array.from(c.image));
    expect(Array.from(plain.image)).toEqual(Array.from((await ds.get(1)).image)); // no rng, no augmentation
    const batch = toBatch([plain, a]);
    expect(batch.images.shape).toEqual([2, 32, 32, 3]);
    expect(batch.targets.shape).toEqual([2, 16, 16, 2]);
    tf.dispose([batch.images, batch.targets]);
    const before = tf.memory().numTensors;
    const lb = await loadBatch(ds, [0, 2, 3], new Rng(1));
    expect(lb.names).toEqual(['S0001', 'S0003', 'S0004']);
    tf.dispose([lb.images, lb.targets]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('the disk cache returns the same arrays', async () => {
    const cacheDir = join(root, 'cache');
    const first = await openRefuge(data, { imageSize: 32, outSize: 16, cacheDir, memoryCache: false });
    const s1 = await first.get(2);
    expect(readdirSync(cacheDir).filter((f) => f.endsWith('.bin'))).toHaveLength(1);
    const second = await openRefuge(data, { imageSize: 32, outSize: 16, cacheDir });
    const s2 = await second.get(2);
    expect(Array.from(s2.image)).toEqual(Array.from(s1.image));
    expect(Array.from(s2.target)).toEqual(Array.from(s1.target));
  });

  it('clear errors: missing root, missing split, missing rater mask, broken mask, bad index', async () => {
    await expect(openRefuge(join(root, 'nope'))).rejects.toThrow(/nope: no such data folder/);
    await expect(openRefuge(data, { split: 'val' })).rejects.toThrow(/Validation-400: no such split folder \(found Test-400, Training-400\)/);
    const broken = join(root, 'broken');
    cpSync(data, broken, { recursive: true });
    rmSync(join(broken, 'Training-400/S0002/S0002_seg_disc_4.png'));
    await expect(openRefuge(broken)).rejects.toThrow(PeftError);
    await expect(openRefuge(broken)).rejects.toThrow(/Training-400\/S0002\/S0002_seg_disc_4\.png: missing rater mask/);
    const bad = join(root, 'bad');
    cpSync(data, bad, { recursive: true });
    writeFileSync(join(bad, 'Training-400/S0003/S0003_seg_cup_2.png'), 'oops');
    const ds = await openRefuge(bad, { imageSize: 32, outSize: 16 });
    await expect(ds.get(2)).rejects.toThrow(/S0003_seg_cup_2\.png: not a PNG, JPEG, BMP, DICOM or TIFF image/);
    await expect(ds.get(4)).rejects.toThrow(/sample index 4 out of range/);
  });
});
