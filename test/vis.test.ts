// The seed's `-vis N`: every N validation batches a panel (image + prompt |
// per class: ground truth | prediction with Dice) in <run>/vis/. The panel's
// layout and captions in process, then the seed's reference command verbatim
// through the CLI (a MobileSAM tiny_vit checkpoint written by the test as a
// torch.save zip, a tiny synthetic REFUGE set), with -vis 1.
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decode } from 'fast-png';
import { createDefaultRegistry } from '../src/builtins.js';
import { synthesize } from '../src/app/data/synth-output.js';
import type { Sample } from '../src/app/data/dataset.js';
import { captionFont, panelRowSize, visPanel, visTileSide, VIS_ROWS } from '../src/app/pictures/index.js';
import { bin } from './support/cli-runs.js';
import { dictPkl, ptArchive, tensorPkl } from './support/torch-builders.js';

/** A state dict as PyTorch's torch.save writes it (float32 and int64 storages in a zip). */
function torchSave(state: Map<string, tf.Tensor>): Uint8Array {
  const entries: [string, Uint8Array][] = [];
  const storages: Record<string, Uint8Array> = {};
  let key = 0;
  for (const [name, t] of state) {
    const k = String(key++);
    const shape = t.shape;
    const stride = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
    if (t.dtype === 'float32') {
      const v = t.dataSync() as Float32Array;
      storages[k] = new Uint8Array(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength));
      entries.push([name, tensorPkl(k, 'FloatStorage', t.size, 0, shape, stride)]);
    } else {
      storages[k] = new Uint8Array(BigInt64Array.from(Array.from(t.dataSync(), (x) => BigInt(x))).buffer);
      entries.push([name, tensorPkl(k, 'LongStorage', t.size, 0, shape, stride)]);
    }
  }
  return ptArchive(dictPkl(entries, true), storages);
}

function fakeSample(name: string, size: number, outSize: number): Sample {
  const image = new Float32Array(size * size * 3);
  for (let i = 0; i < image.length; i++) image[i] = (i * 37) % 256;
  const target = new Float32Array(outSize * outSize * 2);
  for (let y = 0; y < outSize; y++) for (let x = 0; x < outSize; x++) {
    const r = Math.hypot(x - outSize / 2, y - outSize / 2);
    target[(y * outSize + x) * 2] = r < outSize / 8 ? 1 : 0;
    target[(y * outSize + x) * 2 + 1] = r < outSize / 4 ? 1 : 0;
  }
  return { name, image, target, size, outSize, channels: 2 };
}

/** Pixels that are neither white nor the tile's pixels: caption ink in the strip under the first tile. */
function captionInk(png: { width: number; data: ArrayLike<number>; channels: number }, y0: number, y1: number, x1: number): number {
  let ink = 0;
  for (let y = y0; y < y1; y++) for (let x = 4; x < x1; x++) if (png.data[(y * png.width + x) * png.channels]! < 128) ink++;
  return ink;
}

describe('vis panels', () => {
  it('one row per image (at most 4): image | truth | prediction per class, captions under the tiles', () => {
    const side = visTileSide(64);
    expect(side).toBe(128);
    expect(visTileSide(256)).toBe(256);
    expect(visTileSide(1024)).toBe(256);
    const samples = Array.from({ length: 5 }, (_, i) => fakeSample(`s${i}`, 64, 16));
    const panel = visPanel(samples.map((sample) => ({ sample, probability: sample.target.map((v) => v * 0.9), prompt: { points: [{ x: 32, y: 32, label: 1 }] } })), ['cup', 'disc']);
    const row = panelRowSize(Array.from({ length: 5 }, () => ({ width: side, height: side })));
    // 5 tiles of 128 px with 4 px gaps and margins; 4 rows of 128 px + an 18 px caption
    expect(row).toEqual({ width: 4 + 5 * 128 + 4 * 4 + 4, height: 4 + 128 + 18 + 4 });
    expect([panel.width, panel.height]).toEqual([row.width, VIS_ROWS * row.height]);
    // the prediction tile of the cup is drawn over the image (cup colour inside), the truth tile alike
    const at = (x: number, y: number) => Array.from(panel.data.subarray((y * panel.width + x) * 3, (y * panel.width + x) * 3 + 3));
    const centre = 4 + side / 2;
    const predCup = at(4 + 2 * (side + 4) + side / 2, centre);
    expect(predCup[0]).toBeGreaterThan(predCup[2]!); // yellow-tinted: red above blue
    if (captionFont()) expect(captionInk({ ...panel, channels: 3 }, 4 + side, 4 + side + 18, 4 + side)).toBeGreaterThan(10);
  });

  it("the seed's reference command runs verbatim, with -vis 1 writing a panel per validation batch", async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'vis-'));
    mkdirSync(join(cwd, 'data'));
    // 6 samples: 5 to train (3 steps at batch 2), 1 to validate (one batch)
    await synthesize(join(cwd, 'data/REFUGE'), { n: 6, size: 64, seed: 3 });
    const registry = await createDefaultRegistry();
    // MobileSAM with its full TinyViT encoder (the tiny_vit preset), at the command's 256 px
    const model = registry.createBackbone('mobile_sam', 'tiny_vit', { img_size: 256 });
    writeFileSync(join(cwd, 'mobile_sam.pt'), torchSave(model.model.stateDict()));
    model.model.dispose();
    const args = '-net mobile_sam -dataset REFUGE -data_path data/REFUGE -sam_ckpt mobile_sam.pt -image_size 256 -vis 1 -exp_name tiny-mobile-isic-256 -encoder tiny_vit -mod sam_lora'.split(' ');
    const r = spawnSync(process.execPath, [bin, 'train', ...args], { cwd, encoding: 'utf8', timeout: 900_000 });
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.status).toBe(0);
    const visDir = join(cwd, 'runs/tiny-mobile-isic-256/vis');
    expect(existsSync(visDir)).toBe(true);
    const files = readdirSync(visDir).sort();
    // one validation at the end of the one epoch, over one batch
    expect(files).toEqual(['epoch-1-batch-0.png']);
    const png = decode(readFileSync(join(visDir, files[0]!)));
    // 256 px tiles: image, then truth and prediction for cup and disc; one image in the batch
    expect([png.width, png.height]).toEqual([4 + 5 * 256 + 4 * 4 + 4, 4 + 256 + 18 + 4]);
    const log = readFileSync(join(cwd, 'runs/tiny-mobile-isic-256/run.json'), 'utf8');
    expect(JSON.parse(log).options.vis).toBe(1);
  });
});
