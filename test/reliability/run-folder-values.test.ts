// Issue 19, class 5: values read from a run folder are validated by one
// schema (app/runs/run-folder-schema.ts) at every entry point — eval, merge,
// export, predict, serve, the report's pictures, train --resume — and a model
// built from a run folder or an adapter folder passes the same size check as
// `peft train` before anything is allocated. Each bad folder is one line
// naming the file and the key, never a TypeError or an allocation failure.
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDefaultRegistry } from '../../src/builtins.js';
import { PeftError } from '../../src/core/errors.js';
import { saveAdapter } from '../../src/core/io/adapter-files.js';
import type { Registry } from '../../src/core/registry/registry.js';
import { evaluateRun } from '../../src/app/runs/evaluate-run.js';
import { exportRun, mergeRun } from '../../src/app/runs/merge-run.js';
import { buildPeftModel, writeRunSpec, type RunSpec } from '../../src/app/runs/run-spec.js';
import { trainRun } from '../../src/app/runs/train-run.js';
import { openPredictor } from '../../src/app/predict/open-predictor.js';
import { openServedRuns } from '../../src/app/serve/index.js';
import { readTrainerState } from '../../src/app/train/checkpoint.js';

const tmp = mkdtempSync(join(tmpdir(), 'peft-run-values-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let registry: Registry;
let good: string;

function spec(): RunSpec {
  return {
    version: 1,
    createdAt: new Date(0).toISOString(),
    backbone: { id: 'mobile_sam', preset: 'tiny', overrides: { img_size: 64 } },
    method: { id: 'lora', config: { ...registry.createMethod('lora', { r: 2 }).config } },
    trainDecoder: true,
    imageSize: 64,
    outSize: 16,
    dataset: { kind: 'refuge', path: null },
    augment: false,
    options: { batch: 1, lr: 1e-4, valEvery: 1, seed: 3, loss: 'bce', prompt: 'click', steps: 2 },
  };
}

beforeAll(async () => {
  registry = await createDefaultRegistry();
  good = join(tmp, 'good');
  mkdirSync(good, { recursive: true });
  writeRunSpec(good, spec());
  const peft = buildPeftModel(registry, spec());
  const ckpt = join(good, 'checkpoints', 'last');
  await saveAdapter(ckpt, peft);
  peft.dispose();
  writeFileSync(join(ckpt, 'trainer_state.json'), JSON.stringify({ step: 1, epoch: 0, bestDice: null, bestStep: null, adamStep: 1 }));
});

let n = 0;
/** A copy of the good run whose run.json is the good one changed by `edit` in place, or what `edit` returns when it returns something. */
function runWith(edit: (s: Record<string, any>) => unknown): string {
  const dir = join(tmp, `run-${++n}`);
  cpSync(good, dir, { recursive: true });
  const s = JSON.parse(readFileSync(join(good, 'run.json'), 'utf8')) as Record<string, any>;
  const replaced = edit(s);
  writeFileSync(join(dir, 'run.json'), JSON.stringify(replaced === undefined ? s : replaced));
  return dir;
}

/** Every entry point that opens a run folder, as a function that must reject. */
const entryPoints: [string, (dir: string) => Promise<unknown>][] = [
  ['eval', (dir) => evaluateRun(registry, dir)],
  ['merge', (dir) => mergeRun(registry, dir, { out: join(tmp, `m-${++n}.safetensors`) })],
  ['export', (dir) => exportRun(registry, dir, { out: join(tmp, `x-${++n}`), format: 'peftjs' })],
  ['predict', (dir) => openPredictor(registry, { run: dir })],
  ['serve', (dir) => openServedRuns(registry, [dir])],
  ['train --resume', (dir) => trainRun(registry, { backbone: { id: 'x' }, method: { id: 'x' }, dataset: { kind: 'refuge', path: null }, augment: false, options: { batch: 1, valEvery: 1, seed: 0, loss: 'bce', prompt: 'click' } }, dir, {}, true)],
];

/** The PeftError message `f` rejects with (fails on anything else: a TypeError, a RangeError, success). */
async function refusal(f: () => Promise<unknown>): Promise<string> {
  try {
    await f();
  } catch (err) {
    if (err instanceof PeftError) return err.message;
    throw new Error(`not a PeftError: ${String(err)}`);
  }
  throw new Error('accepted');
}

describe('run.json values (one schema, every entry point)', () => {
  const cases: [string, (s: Record<string, any>) => unknown, RegExp][] = [
    ['null', () => null, /run\.json: must be an object \(a peftjs run description\), got null$/],
    ['no dataset', (s) => void delete s.dataset, /run\.json: dataset must be an object, got nothing \(the key is missing\)$/],
    ['options.batch 0', (s) => void (s.options.batch = 0), /run\.json: options\.batch must be an integer from 1 to 1024, got 0$/],
    ['dataset.path 5', (s) => void (s.dataset.path = 5), /run\.json: dataset\.path must be a path \(1 to 4096 characters\), got 5$/],
    ['command 5', (s) => void (s.command = 5), /run\.json: command must be a string, got 5$/],
    ['options.lr "fast"', (s) => void (s.options.lr = 'fast'), /run\.json: options\.lr must be a finite number > 0, got fast$/],
    ['imageSize 65536', (s) => void (s.imageSize = 65536), /run\.json: imageSize must be an integer from 16 to 4096, got 65536$/],
    ['method.config an array', (s) => void (s.method.config = [1]), /run\.json: method\.config must be an object, got \[1\]$/],
  ];
  for (const [name, edit, message] of cases) {
    it(`${name}: every entry point refuses it in one line naming the key`, async () => {
      const dir = runWith(edit);
      for (const [entry, open] of entryPoints) {
        const m = await refusal(() => open(dir));
        expect(m, entry).toMatch(message);
        expect(m.startsWith(join(dir, 'run.json')), entry).toBe(true);
      }
    });
  }
});

describe('sizes from a run folder pass the size check before anything is allocated', () => {
  for (const [name, edit, message] of [
    ['lora r 2e6', (s: Record<string, any>) => void (s.method.config.r = 2e6), /r=2000000 is larger than min\(in, out\)/],
    ['lora r 5e7 (was: Invalid typed array length)', (s: Record<string, any>) => void (s.method.config.r = 5e7), /r=50000000 is larger than min\(in, out\)/],
    ['adapter mid_dim 1e7', (s: Record<string, any>) => void (s.method = { id: 'adapter', config: { ...registry.createMethod('adapter', {}).config, mid_dim: 1e7 } }), /method 'adapter' would add .* more than 4x/],
    ['img_size override 65536', (s: Record<string, any>) => void (s.backbone.overrides.img_size = 65536), /img_size \(the image size\) must be an integer from 16 to 4096, got 65536/],
  ] as const) {
    it(`${name}: eval, merge, export, predict, serve and resume refuse it`, async () => {
      const dir = runWith(edit);
      for (const [entry, open] of entryPoints) {
        // merge refuses the adapter method itself, before building it
        if (entry === 'merge' && name.startsWith('adapter')) continue;
        expect(await refusal(() => open(dir)), entry).toMatch(message);
      }
    });
  }
});

describe('the rest of a run folder', () => {
  it('trainer state with strings where numbers belong: one line naming the file and the key', () => {
    const dir = runWith(() => undefined);
    const ckpt = join(dir, 'checkpoints', 'last');
    for (const [state, message] of [
      [{ step: '1', epoch: 0, bestDice: null, bestStep: null, adamStep: 1 }, /trainer_state\.json: step must be an integer from 0 to 100000000, got 1$/],
      [{ step: 1, epoch: 0, bestDice: 'high', bestStep: null, adamStep: 1 }, /trainer_state\.json: bestDice must be a finite number, got high$/],
      [{ step: 1, epoch: 0, bestDice: null, bestStep: null }, /trainer_state\.json: adamStep must be an integer from 0 to 100000000, got nothing/],
      [{ step: 1, epoch: 0, bestDice: null, bestStep: null, adamStep: 1, dice: { cup: 'x' } }, /trainer_state\.json: dice\.cup must be a finite number, got x$/],
      [[], /trainer_state\.json: must be an object \(a trainer state\), got \[\]$/],
    ] as const) {
      writeFileSync(join(ckpt, 'trainer_state.json'), JSON.stringify(state));
      expect(() => readTrainerState(ckpt)).toThrow(message);
    }
  });

  it('a log.jsonl that is a folder: --resume names it', async () => {
    const dir = runWith(() => undefined);
    mkdirSync(join(dir, 'log.jsonl'));
    expect(await refusal(() => entryPoints.find(([e]) => e === 'train --resume')![1](dir))).toMatch(/log\.jsonl: must be a regular file \(the run's log\), got a folder$/);
  });
});
