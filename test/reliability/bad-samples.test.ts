// A bad image must not cost trained steps (issue 19, class 9). Images are
// decoded lazily, so a corrupt validation image used to throw at the first
// epoch-end validation, before any checkpoint: the run kept only run.json and
// its log, and --resume started from step 0. Now (a) every sample's headers
// are checked before training (checkSamples: format, dimensions, declared
// sizes, the per-sample budget; no pixel decoded), naming the bad files, and
// (b) a validation that fails anyway (pixel data that passes the header check
// but does not decode) first saves the last checkpoint, so --resume goes on
// from the steps trained.
import { beforeAll, describe, expect, it } from 'vitest';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { zlibSync } from 'fflate';
import { createDefaultRegistry } from '../../src/builtins.js';
import type { Registry } from '../../src/core/registry/registry.js';
import { PeftError } from '../../src/core/errors.js';
import { ensureDefaultDataset } from '../../src/app/data/synth-output.js';
import { checkSamples, MAX_BAD_FILES_NAMED } from '../../src/app/data/dataset.js';
import { encodePng, readImage } from '../../src/app/data/image-io.js';
import { openRefuge } from '../../src/app/data/refuge.js';
import type { RunSpec } from '../../src/app/runs/run-spec.js';
import { trainRun } from '../../src/app/runs/train-run.js';
import { RunLog } from '../../src/app/train/run-log.js';

let registry: Registry;
let clean: string;
const tmp = mkdtempSync(join(tmpdir(), 'peft-bad-samples-'));

function spec(data: string): RunSpec {
  return {
    version: 1,
    createdAt: '2026-01-01T00:00:00Z',
    backbone: { id: 'sam', preset: 'tiny', overrides: { img_size: 64 } },
    method: { id: 'lora', config: {} },
    trainDecoder: true,
    imageSize: 64,
    outSize: 16,
    dataset: { kind: 'refuge', path: data },
    augment: false,
    // validation at every epoch end: the first one comes after step 3 (5 training samples, batch 2)
    options: { batch: 2, lr: 1e-3, steps: 6, valEvery: 1, seed: 5, loss: 'bce', prompt: 'click', saveEvery: 0 },
  };
}

/** A copy of the clean data set to spoil. */
function copyOfData(name: string): string {
  const dir = join(tmp, name);
  cpSync(clean, dir, { recursive: true });
  return dir;
}

/** The validation split's folder (Validation-400 when there is one, else Test-400). */
function valSplit(root: string): string {
  return join(root, existsSync(join(root, 'Validation-400')) ? 'Validation-400' : 'Test-400');
}

/** The first sample folder of a split, and its name. */
function firstSample(split: string): { dir: string; name: string } {
  const name = readdirSync(split).filter((d) => !d.startsWith('.')).sort()[0]!;
  return { dir: join(split, name), name };
}

function pngChunk(type: string, body: Uint8Array): Uint8Array {
  const head = Buffer.concat([Buffer.from(type, 'latin1'), body]);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(head));
  return Buffer.concat([len, head, crc]);
}

/** A 64x64 RGB PNG whose header is right and whose deflate stream is cut in half (every chunk's CRC valid). */
function pngWithTruncatedData(): Uint8Array {
  const w = 64;
  const raw = new Uint8Array(w * (w * 3 + 1));
  for (let i = 0; i < raw.length; i++) raw[i] = i % (w * 3 + 1) === 0 ? 0 : (i * 7) & 255;
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(w, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const idat = zlibSync(raw);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), pngChunk('IHDR', ihdr), pngChunk('IDAT', idat.subarray(0, idat.length >> 1)), pngChunk('IEND', new Uint8Array(0))]);
}

function stepsLogged(runDir: string): number[] {
  return RunLog.read(join(runDir, 'log.jsonl')).flatMap((r) => (r.type === 'step' ? [r.step as number] : []));
}

beforeAll(async () => {
  registry = await createDefaultRegistry();
  clean = await ensureDefaultDataset(join(tmp, 'cache'), { n: 6, size: 64, seed: 3 });
});

describe('a bad image is found before training, or costs no trained step', () => {
  it('a validation image whose pixel data is corrupt (its header is fine): the run fails at validation, the last checkpoint holds the steps, --resume continues from them', async () => {
    const data = copyOfData('corrupt-pixels');
    const { dir, name } = firstSample(valSplit(data));
    const good = await readImage(join(dir, `${name}.jpg`));
    rmSync(join(dir, `${name}.jpg`));
    const bad = join(dir, `${name}.png`);
    writeFileSync(bad, pngWithTruncatedData());
    const run = join(tmp, 'runs', 'corrupt-pixels');
    const seen: number[] = [];
    const err = await trainRun(registry, spec(data), run, { onStep: (e) => seen.push(e.step) }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PeftError);
    const message = (err as Error).message;
    expect(message.startsWith(bad), message).toBe(true);
    expect(message).toMatch(/\(validation after step 3 failed; the last checkpoint keeps the 3 steps trained: fix the file and --resume the run\)$/);
    expect(seen).toEqual([1, 2, 3]);
    expect(existsSync(join(run, 'checkpoints/last'))).toBe(true);

    // the file mended, the run resumes from step 3: validates the epoch it could not, then trains steps 4 to 6
    writeFileSync(bad, encodePng(good));
    const resumedSteps: number[] = [];
    const summary = await trainRun(registry, spec(data), run, { onStep: (e) => resumedSteps.push(e.step) }, true);
    expect(resumedSteps).toEqual([4, 5, 6]);
    expect(summary.steps).toBe(6);
    expect(stepsLogged(run)).toEqual([1, 2, 3, 4, 5, 6]);
    const infos = RunLog.read(join(run, 'log.jsonl')).filter((r) => r.type === 'info').map((r) => r.message);
    expect(infos).toContain('resumed');
    expect(RunLog.read(join(run, 'log.jsonl')).filter((r) => r.type === 'val').map((r) => r.step)).toEqual([3, 6]);
  });

  it('bad headers in the training and the validation split are all named before any step runs, and no run folder is made', async () => {
    const data = copyOfData('bad-headers');
    const val = firstSample(valSplit(data));
    const text = join(val.dir, `${val.name}.jpg`);
    writeFileSync(text, 'not an image\n');
    const train = firstSample(join(data, 'Training-400'));
    const mask = join(train.dir, `${train.name}_seg_disc_3.png`);
    // a mask whose header declares 100000 x 100000 pixels
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(100000, 0);
    ihdr.writeUInt32BE(100000, 4);
    ihdr.set([8, 0, 0, 0, 0], 8);
    writeFileSync(mask, Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), pngChunk('IHDR', ihdr), pngChunk('IDAT', zlibSync(new Uint8Array(10))), pngChunk('IEND', new Uint8Array(0))]));
    const run = join(tmp, 'runs', 'bad-headers');
    let steps = 0;
    const err = await trainRun(registry, spec(data), run, { onStep: () => steps++ }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PeftError);
    const message = (err as Error).message;
    expect(message).toMatch(/^2 bad files in 2 of 6 samples \(checked before training\): /);
    expect(message).toContain(`${mask}: image dimensions 100000x100000 exceed the limit of 16384x16384`);
    expect(message).toContain(`${text}: not a PNG, JPEG, BMP, DICOM or TIFF image (it starts with text "not an i`);
    expect(message).not.toContain('\n');
    expect(steps).toBe(0);
    expect(existsSync(run)).toBe(false);
  });

  it(`many bad files: the first ${MAX_BAD_FILES_NAMED} are named, the others counted`, async () => {
    const root = join(tmp, 'many-bad');
    const dir = join(root, 'Training-400', 'S1');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'S1.png'), encodePng({ width: 8, height: 8, channels: 3, data: new Uint8Array(192) }));
    for (const c of ['cup', 'disc']) for (let k = 1; k <= 7; k++) writeFileSync(join(dir, `S1_seg_${c}_${k}.png`), k <= 4 ? '' : 'text');
    const ds = await openRefuge(root, { imageSize: 8 });
    const err = await checkSamples([ds, ds]).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PeftError);
    const message = (err as Error).message;
    expect(message).toMatch(/^14 bad files in 1 of 1 samples \(checked before training\): .*S1_seg_cup_1\.png: not a PNG.*it is empty\)/);
    expect(message.match(/S1_seg_/g)).toHaveLength(MAX_BAD_FILES_NAMED);
    expect(message).toMatch(/; and 9 more$/);
  });
});
