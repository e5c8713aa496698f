// peft predict: the prompt syntax, the inputs, the predictor against
// evaluation's forward, the job (encoder once per image, files, failures, the
// output folder), and end to end through the CLI: a tiny run trained from a
// checkpoint file, whose masks on 5 test images with eval's prompts score
// exactly the Dice `peft eval` reports, and the same masks through its
// exported Hugging Face PEFT adapter on that checkpoint.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decode } from 'fast-png';
import { createDefaultRegistry } from '../src/builtins.js';
import { PeftError } from '../src/core/errors.js';
import { saveTensors } from '../src/core/io/safetensors.js';
import { compose } from '../src/core/peft/compose.js';
import { seedEverything } from '../src/core/nn/init.js';
import type { Registry } from '../src/core/registry/registry.js';
import { encodeJpeg, encodePng, readImage, type Image8 } from '../src/app/data/image-io.js';
import { openRefuge } from '../src/app/data/refuge.js';
import { synthesize } from '../src/app/data/synth-output.js';
import { imageScores } from '../src/app/train/metrics.js';
import { makeBatch, predictLogits } from '../src/app/train/step.js';
import { EvalPromptStream, expandInputs, findGroundTruth, ModelPredictor, predictImages, PREDICTIONS_FILE, scaleCoord, scaleSpan, toImagePrompt } from '../src/app/predict/index.js';
import { Rng } from '../src/app/data/random.js';
import { buildPrompts, disposePrompts } from '../src/app/train/prompts.js';
import { parseBox, parsePoint, promptsFromText } from '../src/app/predict/prompt-text.js';
import { bin } from './support/cli-runs.js';
import { writeDicom } from './support/dicom-writer.js';
import { writeTiff } from './support/tiff-writer.js';

let registry: Registry;
const tmp = mkdtempSync(join(tmpdir(), 'predict-'));
beforeAll(async () => {
  registry = await createDefaultRegistry();
});

/** A 64 px MobileSAM tiny + LoRA, its decoder's weights nudged so masks are not empty, as a predictor of two classes. */
function tinyPredictor(): ModelPredictor {
  seedEverything(5);
  const backbone = registry.createBackbone('mobile_sam', 'tiny', { img_size: 64 });
  const peft = compose(backbone, registry.createMethod('lora', {}), { trainDecoder: true });
  return new ModelPredictor(peft, { label: 'tiny', classes: ['cup', 'disc'], evalPrompts: { mode: 'click', seed: 0, batch: 1, outSize: 16 }, describe: {} });
}

function picture(width: number, height: number, seed = 1): Image8 {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + seed * 17 + ((i / 97) | 0)) % 256;
  return { width, height, channels: 3, data };
}

const peft = (args: string[], cwd: string) => spawnSync(process.execPath, [bin, ...args], { cwd, encoding: 'utf8', timeout: 600_000 });

describe('prompts as text', () => {
  it('points x,y[:label], boxes x0,y0,x1,y1; one prompt of the points (and a box), a prompt per box', () => {
    expect(parsePoint('12,40')).toEqual({ x: 12, y: 40, label: 1 });
    expect(parsePoint(' 12.5 , 40:0')).toEqual({ x: 12.5, y: 40, label: 0 });
    expect(() => parsePoint('12;40')).toThrow(/--point '12;40': expected x,y/);
    expect(() => parsePoint('1,2:3')).toThrow(PeftError);
    expect(parseBox('1,2,30,40')).toEqual([1, 2, 30, 40]);
    expect(() => parseBox('30,2,1,40')).toThrow(/x1 must not be left of x0/);
    expect(promptsFromText(['1,2', '3,4:0'], [])).toEqual([{ points: [{ x: 1, y: 2, label: 1 }, { x: 3, y: 4, label: 0 }] }]);
    expect(promptsFromText(['1,2'], ['0,0,9,9'])).toEqual([{ points: [{ x: 1, y: 2, label: 1 }], box: [0, 0, 9, 9] }]);
    expect(promptsFromText([], ['0,0,9,9', '1,1,5,5'])).toEqual([{ box: [0, 0, 9, 9] }, { box: [1, 1, 5, 5] }]);
    expect(() => promptsFromText(['1,2'], ['0,0,9,9', '1,1,5,5'])).toThrow(/each box is its own prompt/);
  });
});

describe('prompts from ground truth', () => {
  it('image pixels and input pixels: pixel centres stay pixel centres, box edges stay edges, and back', () => {
    expect(scaleCoord(0, 64, 128)).toBe(0.5);
    expect(scaleCoord(63, 64, 128)).toBe(126.5);
    expect(scaleCoord(10, 64, 64)).toBe(10);
    expect(scaleSpan(0, 63, 64, 128)).toEqual([0, 127]);
    expect(scaleSpan(8, 15, 64, 32)).toEqual([4, 7]);
    const back = toImagePrompt({ point: { x: 20, y: 7, label: 1 }, box: [4, 5, 30, 40] }, 64, 200, 90);
    expect(scaleCoord(back.points![0]!.x, 200, 64)).toBeCloseTo(20, 10);
    expect(scaleCoord(back.points![0]!.y, 90, 64)).toBeCloseTo(7, 10);
    expect(scaleSpan(back.box![0], back.box![2], 200, 64).map((v) => +v.toFixed(10))).toEqual([4, 30]);
  });

  it("evaluation's draws: image i of a batch draws after the images before it, from its batch's stream", () => {
    const target = (cx: number) => Float32Array.from({ length: 16 * 16 }, (_, i) => (Math.abs((i % 16) - cx) < 3 && Math.abs(((i / 16) | 0) - 8) < 3 ? 1 : 0));
    const samples = [3, 8, 12].map((cx, i) => ({ name: String(i), image: new Float32Array(0), target: target(cx), size: 64, outSize: 16, channels: 1 }));
    for (const mode of ['click', 'box'] as const) {
      const stream = new EvalPromptStream(mode, 9, 2);
      const got = samples.map((s, i) => stream.next(i, s.target, 64, 16));
      const a = buildPrompts(samples.slice(0, 2), mode, new Rng(9, 'eval-prompt', 0));
      const b = buildPrompts(samples.slice(2), mode, new Rng(9, 'eval-prompt', 2));
      if (mode === 'click') {
        const xy = [...a.points!.coords.dataSync(), ...b.points!.coords.dataSync()];
        expect(got.flatMap((p) => [p.point!.x, p.point!.y]).map(Math.fround)).toEqual(xy);
      } else {
        expect(got.flatMap((p) => p.box!).map(Math.fround)).toEqual([...a.boxes!.dataSync(), ...b.boxes!.dataSync()]);
      }
      disposePrompts(a);
      disposePrompts(b);
    }
  });

  it('finds REFUGE raters (in a sample folder or beside), else one mask by its usual names, never the image itself', () => {
    const dir = join(tmp, 'gt');
    mkdirSync(join(dir, 'S1'), { recursive: true });
    for (const k of [2, 1, 10]) writeFileSync(join(dir, 'S1', `S1_seg_cup_${k}.png`), 'x');
    writeFileSync(join(dir, 'S2_seg_cup_1.png'), 'x');
    writeFileSync(join(dir, 'S3_mask.png'), 'x');
    writeFileSync(join(dir, 'S4.png'), 'x');
    expect(findGroundTruth(dir, '/images/S1.jpg', 'cup').map((f) => f.slice(dir.length + 1))).toEqual(['S1/S1_seg_cup_1.png', 'S1/S1_seg_cup_2.png', 'S1/S1_seg_cup_10.png']);
    expect(findGroundTruth(dir, '/images/S2.jpg', 'cup')).toEqual([join(dir, 'S2_seg_cup_1.png')]);
    expect(findGroundTruth(dir, '/images/S3.png', 'cup')).toEqual([join(dir, 'S3_mask.png')]);
    expect(findGroundTruth(dir, '/images/S4.jpg', 'cup')).toEqual([join(dir, 'S4.png')]);
    expect(() => findGroundTruth(dir, join(dir, 'S4.png'), 'cup')).toThrow(/no ground truth for S4\.png in .*gt \(looked for S4\/S4_seg_cup_1\.png/);
  });
});

describe('inputs', () => {
  it('files, folders (their images), patterns; sorted, each once, the output folder left out', async () => {
    const dir = join(tmp, 'inputs');
    mkdirSync(join(dir, 'a'), { recursive: true });
    mkdirSync(join(dir, 'out'), { recursive: true });
    for (const f of ['a/2.png', 'a/1.jpg', 'a/notes.txt', 'b.png', 'out/x.png']) writeFileSync(join(dir, f), 'x');
    expect(await expandInputs(['a'], { cwd: dir })).toEqual([join(dir, 'a/1.jpg'), join(dir, 'a/2.png')]);
    expect(await expandInputs(['b.png', '**/*.png', 'missing.png'], { cwd: dir, exclude: 'out' })).toEqual([join(dir, 'b.png'), join(dir, 'a/2.png'), join(dir, 'missing.png')]);
    await expect(expandInputs(['*.bmp'], { cwd: dir })).rejects.toThrow(/\*\.bmp: no file matches this pattern/);
    await expect(expandInputs(['out'], { cwd: dir, exclude: 'elsewhere' })).resolves.toEqual([join(dir, 'out/x.png')]);
    await expect(expandInputs([], { cwd: dir })).rejects.toThrow(/no images given/);
  });
});

describe('the predictor', () => {
  let p: ModelPredictor;
  beforeAll(() => {
    p = tinyPredictor();
  });
  afterAll(() => p.dispose());

  it("gives evaluation's probabilities exactly: same input, same prompt, same decoding of the classes", () => {
    const img = picture(64, 64);
    const sample = { name: 'x', image: Float32Array.from(img.data), target: new Float32Array(64 * 64 * 2), size: 64, outSize: 64, channels: 2 };
    const point = { x: 20, y: 41, label: 1 as const };
    const prompts = { points: { coords: tf.tensor3d([[[point.x, point.y]]]), labels: tf.tensor2d([[1]]) } };
    const batch = makeBatch((p as unknown as { peft: Parameters<typeof makeBatch>[0] }).peft, [sample], prompts);
    const logits = predictLogits((p as unknown as { peft: Parameters<typeof predictLogits>[0] }).peft, batch, 2);
    const want = tf.sigmoid(logits).dataSync();
    tf.dispose([logits, batch.images, batch.targets, prompts.points.coords, prompts.points.labels]);
    const e = p.embed(img);
    const got = p.predict(e, { points: [point] });
    e.dispose();
    expect(got.masks.map((m) => m.label)).toEqual(['cup', 'disc']);
    for (let k = 0; k < 2; k++) {
      const plane = Float32Array.from({ length: 64 * 64 }, (_, i) => want[i * 2 + k]!);
      expect(got.masks[k]!.probability).toEqual(plane);
    }
  });

  it("masks at the image's own size, any shape; multimask gives the head's candidates; a disposed embedding is refused; no tensor left", () => {
    const before = tf.memory().numTensors;
    const e = p.embed(picture(90, 50));
    const one = p.predict(e, { box: [10, 5, 60, 40] });
    expect([one.width, one.height, one.masks.length, one.masks[0]!.probability.length]).toEqual([90, 50, 2, 90 * 50]);
    const all = p.predict(e, { points: [{ x: 45, y: 25, label: 1 }] }, { multimask: true });
    expect(all.masks.length).toBe(3);
    expect(all.masks.map((m) => m.label)).toEqual(['cup', 'disc', undefined]);
    expect(p.multimask).toBe(true);
    e.dispose();
    expect(() => p.predict(e, {})).toThrow(/disposed/);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('predictImages: the encoder once per image whatever the prompts; files, predictions.json; a bad image is a warning and the rest go on', async () => {
    const dir = join(tmp, 'job');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'a.png'), encodePng(picture(64, 64, 1)));
    writeFileSync(join(dir, 'b.jpg'), encodeJpeg(picture(80, 48, 2)));
    writeFileSync(join(dir, 'broken.png'), 'not a picture');
    writeFileSync(join(dir, 'small.png'), encodePng(picture(20, 20, 3)));
    const embed = vi.spyOn(p, 'embed');
    const predict = vi.spyOn(p, 'predict');
    const warnings: string[] = [];
    const files = ['a.png', 'broken.png', 'b.jpg', 'small.png'].map((f) => join(dir, f));
    const boxes = [{ box: [2, 2, 18, 18] as [number, number, number, number] }, { box: [5, 4, 15, 19] as [number, number, number, number] }, { points: [{ x: 10, y: 10, label: 1 as const }] }];
    const r = await predictImages(p, files, { out: join(dir, 'out'), prompts: { kind: 'given', prompts: boxes }, probabilities: true, cwd: dir, warn: (l) => warnings.push(l) });
    expect(embed).toHaveBeenCalledTimes(3); // a, b, small: once each
    expect(predict).toHaveBeenCalledTimes(9); // 3 prompts each
    embed.mockRestore();
    predict.mockRestore();
    expect(r.failed.map((f) => f.file)).toEqual(['broken.png']);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^broken\.png: /);
    const out = readdirSync(join(dir, 'out')).sort();
    expect(out).toContain('a.p1.cup.mask.png');
    expect(out).toContain('b.p3.disc.prob.png');
    expect(out).toContain('small.p2.overlay.png');
    const mask = decode(readFileSync(join(dir, 'out/b.p2.cup.mask.png')));
    expect([mask.width, mask.height, mask.channels, mask.depth]).toEqual([80, 48, 1, 8]);
    expect(new Set(mask.data)).toSatisfy((s: Set<number>) => [...s].every((v) => v === 0 || v === 255));
    const prob = decode(readFileSync(join(dir, 'out/b.p2.cup.prob.png')));
    expect([prob.width, prob.height, prob.depth]).toEqual([80, 48, 16]);
    const overlay = await readImage(join(dir, 'out/a.p1.overlay.png'));
    expect([overlay.width, overlay.height, overlay.channels]).toEqual([64, 64, 3]);
    const json = JSON.parse(readFileSync(join(dir, 'out', PREDICTIONS_FILE), 'utf8'));
    expect(json.images.map((i: { file: string }) => i.file)).toEqual(['a.png', 'b.jpg', 'small.png']);
    const first = json.images[1];
    expect([first.width, first.height]).toEqual([80, 48]);
    expect(first.encoderMs).toBeGreaterThan(0);
    expect(first.predictions[1].prompt).toEqual({ box: [5, 4, 15, 19] });
    expect(first.predictions[1].masks[0]).toMatchObject({ label: 'cup', file: 'b.p2.cup.mask.png', probabilityFile: 'b.p2.cup.prob.png' });
    expect(first.predictions[1].masks[0].area).toBe(mask.data.filter((v: number) => v === 255).length);
    expect(typeof first.predictions[1].masks[0].score).toBe('number');
    expect(json.failed).toEqual([{ file: 'broken.png', error: expect.stringMatching(/broken\.png/) }]);

    // a point outside one image: that image fails with one line naming it and the point
    warnings.length = 0;
    const r2 = await predictImages(p, [join(dir, 'a.png'), join(dir, 'small.png')], { out: join(dir, 'out'), prompts: { kind: 'given', prompts: [{ points: [{ x: 30, y: 5, label: 1 }] }] }, cwd: dir, warn: (l) => warnings.push(l) });
    expect(r2.images.map((i) => i.file)).toEqual(['a.png']);
    expect(warnings).toEqual(['small.png (20x20): point 30,5 lies outside the 20x20 image (x 0..19, y 0..19)']);
    // the folder of a previous peft predict is written into again; its file list keeps what both wrote
    expect(JSON.parse(readFileSync(join(dir, 'out', PREDICTIONS_FILE), 'utf8')).files).toContain('b.p3.disc.prob.png');
  });

  it("the output folder: someone else's is refused; --force adds to it but never overwrites a file of theirs", async () => {
    const dir = join(tmp, 'owned');
    mkdirSync(join(dir, 'out'), { recursive: true });
    writeFileSync(join(dir, 'a.png'), encodePng(picture(64, 64, 1)));
    writeFileSync(join(dir, 'out/a.cup.mask.png'), 'mine');
    const job = (force: boolean, warn?: (l: string) => void) => predictImages(p, [join(dir, 'a.png')], { out: 'out', force, cwd: dir, prompts: { kind: 'given', prompts: [{ points: [{ x: 3, y: 3, label: 1 }] }] }, warn });
    await expect(job(false)).rejects.toThrow(/out exists and holds files peft predict did not write: choose another --out, or pass --force/);
    const warnings: string[] = [];
    const r = await job(true, (l) => warnings.push(l));
    expect(r.failed).toHaveLength(1);
    expect(warnings[0]).toMatch(/a\.cup\.mask\.png exists and was not written by peft predict: not overwritten/);
    expect(readFileSync(join(dir, 'out/a.cup.mask.png'), 'utf8')).toBe('mine');
    writeFileSync(join(dir, 'out2.json'), '{}');
    mkdirSync(join(dir, 'foreign'));
    writeFileSync(join(dir, 'foreign', PREDICTIONS_FILE), '{"tool":"something else"}');
    await expect(predictImages(p, [join(dir, 'a.png')], { out: 'foreign', force: true, cwd: dir, prompts: { kind: 'none' } })).rejects.toThrow(/predictions\.json was not written by peft predict/);
  });
});

describe('peft predict end to end', () => {
  it("a trained run's masks on 5 test images with eval's prompts score eval's Dice; its exported HF PEFT adapter on the checkpoint gives the same masks", async () => {
    const cwd = join(tmp, 'e2e');
    mkdirSync(cwd);
    await synthesize(join(cwd, 'data'), { n: 25, size: 64, seed: 0 });
    // the base weights in a file: the run trains from it, and the adapter is read onto it
    seedEverything(7);
    const base = registry.createBackbone('mobile_sam', 'tiny', { img_size: 64 });
    await saveTensors(join(cwd, 'base.safetensors'), base.model.stateDict());
    base.model.dispose();
    const train = peft(['train', '--preset', 'tiny', '--image-size', '64', '--out-size', '64', '--data-path', 'data', '--checkpoint', 'base.safetensors', '--steps', '150', '--lr', '3e-3', '--lr-schedule', 'cosine', '--val-every', '0', '--exp-name', 'r'], cwd);
    expect(train.status, train.stderr).toBe(0);
    const ev = peft(['eval', '--run', 'runs/r', '--json'], cwd);
    expect(ev.status, ev.stderr).toBe(0);
    const evald = JSON.parse(ev.stdout) as { dice: Record<string, number>; dice05: Record<string, number>; count: number };
    expect(evald.count).toBe(5);
    expect(evald.dice05.disc).toBeGreaterThan(0.05); // masks that are not empty: the match below means something

    const pr = peft(['predict', '--run', 'runs/r', 'data/Test-400/*/*.jpg', '--prompts-from', 'data/Test-400', '--probabilities'], cwd);
    expect(pr.status, pr.stderr).toBe(0);
    expect(pr.stdout).toMatch(/wrote 10 masks for 5 images to .*predictions\/r \(predictions\.json\); encoder \d+ ms\/image, decoder \d+ ms\/prompt/);
    const out = join(cwd, 'predictions/r');
    const json = JSON.parse(readFileSync(join(out, PREDICTIONS_FILE), 'utf8'));
    expect(json.images).toHaveLength(5);
    expect(json.prompts).toMatchObject({ mode: 'click', seed: 0, batch: 2, outSize: 64, class: 'cup' });
    // Dice of the written masks (at 0.5) and of the 16-bit probabilities (eval's thresholds) against the ground truth
    const test = await openRefuge(join(cwd, 'data'), { split: 'test', imageSize: 64, outSize: 64 });
    const classes = ['cup', 'disc'];
    const dice05 = [0, 0];
    const dice = [0, 0];
    for (let i = 0; i < test.length; i++) {
      const s = await test.get(i);
      for (let k = 0; k < 2; k++) {
        const target = Float32Array.from({ length: 64 * 64 }, (_, j) => s.target[j * 2 + k]!);
        const mask = decode(readFileSync(join(out, `${s.name}.${classes[k]}.mask.png`)));
        dice05[k]! += imageScores(Float32Array.from(mask.data, (v) => v / 255), target, 1)[0]!.dice05;
        const prob = decode(readFileSync(join(out, `${s.name}.${classes[k]}.prob.png`)));
        dice[k]! += imageScores(Float32Array.from(prob.data, (v) => v / 65535), target, 1)[0]!.dice;
      }
      const overlay = decode(readFileSync(join(out, `${s.name}.overlay.png`)));
      expect([overlay.width, overlay.height, overlay.channels]).toEqual([64, 64, 3]);
    }
    classes.forEach((c, k) => {
      expect(dice05[k]! / test.length).toBeCloseTo(evald.dice05[c]!, 4);
      expect(dice[k]! / test.length).toBeCloseTo(evald.dice[c]!, 3);
    });

    // the same through the exported Hugging Face PEFT adapter, on the run's base weights: identical masks
    expect(peft(['export', '--run', 'runs/r', '--format', 'hf-peft', '--out', 'hf'], cwd).status).toBe(0);
    // a flag's value before the images: --point takes one value, the images stay images
    const viaRun = peft(['predict', '--run', 'runs/r', '--point', '31,30', 'data/Test-400/*/*.jpg', '--out', 'p-run'], cwd);
    const viaHf = peft(['predict', '--adapter', 'hf', '--checkpoint', 'base.safetensors', '--image-size', '64', '--classes', 'cup,disc', 'data/Test-400/*/*.jpg', '--point', '31,30', '--out', 'p-hf'], cwd);
    expect(viaRun.status, viaRun.stderr).toBe(0);
    expect(viaHf.status, viaHf.stderr).toBe(0);
    const masks = readdirSync(join(cwd, 'p-run')).filter((f) => f.endsWith('.mask.png'));
    expect(masks).toHaveLength(10);
    for (const f of masks) expect(readFileSync(join(cwd, 'p-hf', f)).equals(readFileSync(join(cwd, 'p-run', f))), f).toBe(true);

    // an unreadable image among them: one warning naming it, the others written, exit 1
    writeFileSync(join(cwd, 'data/Test-400/broken.jpg'), 'not a jpeg');
    const bad = peft(['predict', '--run', 'runs/r', 'data/Test-400/broken.jpg', 'data/Test-400/*/*.jpg', '--point', '31,30', '--out', 'p-bad'], cwd);
    expect(bad.status).toBe(1);
    expect(bad.stderr.split('\n').filter((l) => l.includes('broken.jpg'))).toHaveLength(1);
    expect(bad.stderr).toMatch(/peft: warning: data\/Test-400\/broken\.jpg: /);
    expect(readdirSync(join(cwd, 'p-bad')).filter((f) => f.endsWith('.overlay.png'))).toHaveLength(5);
    expect(existsSync(join(cwd, 'p-bad', PREDICTIONS_FILE))).toBe(true);

    // 16-bit monochrome DICOM and TIFF, through --window, segment as the 8-bit grey picture they hold; a compressed DICOM is one line
    const grey = await readImage(join(cwd, 'data/Test-400/S0021/S0021.jpg'), 'grey');
    mkdirSync(join(cwd, 'scans'));
    writeFileSync(join(cwd, 'scans/grey.png'), encodePng(grey));
    const wide = Array.from(grey.data, (v) => v * 257);
    writeFileSync(join(cwd, 'scans/ct.dcm'), writeDicom({ rows: 64, columns: 64, bitsAllocated: 16, pixels: wide }));
    writeFileSync(join(cwd, 'scans/slide.tif'), writeTiff([{ width: 64, height: 64, samplesPerPixel: 1, bitsPerSample: 16, data: wide }]));
    writeFileSync(join(cwd, 'scans/jpeg.dcm'), writeDicom({ rows: 64, columns: 64, bitsAllocated: 16, pixels: wide, transferSyntax: '1.2.840.10008.1.2.4.50' }));
    const med = peft(['predict', '--run', 'runs/r', 'scans', '--window', '32768,65536', '--point', '31,30', '--out', 'p-med'], cwd);
    expect(med.status).toBe(1);
    expect(med.stderr.split('\n').filter((l) => l.startsWith('peft: warning: scans/jpeg.dcm: '))).toHaveLength(1);
    expect(med.stderr).toMatch(/scans\/jpeg\.dcm: .*transfer syntax/i);
    for (const f of ['cup', 'disc']) {
      const png = readFileSync(join(cwd, `p-med/grey.${f}.mask.png`));
      expect(readFileSync(join(cwd, `p-med/ct.${f}.mask.png`)).equals(png), `ct ${f}`).toBe(true);
      expect(readFileSync(join(cwd, `p-med/slide.${f}.mask.png`)).equals(png), `slide ${f}`).toBe(true);
    }

    // bad flags: one line, exit 2
    const both = peft(['predict', '--run', 'runs/r', '--adapter', 'hf', 'x.png', '--point', '1,1'], cwd);
    expect([both.status, both.stderr.trim()]).toEqual([2, 'peft: error: give the model: --run DIR (a trained run), or --adapter DIR with --checkpoint FILE']);
    const noPrompt = peft(['predict', '--run', 'runs/r', 'data/Test-400/*/*.jpg'], cwd);
    expect(noPrompt.status).toBe(2);
    expect(noPrompt.stderr).toMatch(/^peft: error: give a prompt: --point x,y/);
  });
});
