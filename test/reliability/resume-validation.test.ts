// Issue 19, class 7: --resume trusts neither the checkpoint nor the flags.
// The whole training state is checked against the model before the first
// step (Adam's moments: names, shapes, dtypes, finite values; the counters;
// the live tensors; the method's state), and a flag that contradicts the run
// is an error naming the flag and the run's value, while --steps/--epochs
// change the run's length and say so (app/runs/resume-request.ts).
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDefaultRegistry } from '../../src/builtins.js';
import { PeftError } from '../../src/core/errors.js';
import { loadTensors, saveTensors } from '../../src/core/io/safetensors.js';
import type { Registry } from '../../src/core/registry/registry.js';
import { ensureDefaultDataset } from '../../src/app/data/synth-output.js';
import type { ResumeFlags } from '../../src/app/runs/resume-request.js';
import type { RunSpec } from '../../src/app/runs/run-spec.js';
import { trainRun } from '../../src/app/runs/train-run.js';
import { OPTIMIZER_FILE } from '../../src/app/train/checkpoint.js';
import { RunLog } from '../../src/app/train/run-log.js';

const tmp = mkdtempSync(join(tmpdir(), 'peft-resume-check-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let registry: Registry;
let data: string;
/** Runs of 4 steps killed at step 3, their last checkpoint at step 2: LoRA (cosine), and AdaLoRA, its schedule bound to the 4 steps. */
let lora: string;
let adalora: string;

function spec(method: RunSpec['method']): RunSpec {
  return {
    version: 1,
    createdAt: '2026-01-01T00:00:00Z',
    backbone: { id: 'sam', preset: 'tiny', overrides: { img_size: 64 } },
    method,
    trainDecoder: true,
    imageSize: 64,
    outSize: 16,
    dataset: { kind: 'refuge', path: data },
    augment: false,
    options: { batch: 2, lr: 1e-3, steps: 4, valEvery: 0, seed: 1, loss: 'bce', prompt: 'click', saveEvery: 1, lrSchedule: 'cosine' },
  };
}

class Stop extends Error {}

/** A run folder killed during step 3 of 4 (after logging it): its last checkpoint is at step 2. */
async function halfRun(name: string, method: RunSpec['method']): Promise<string> {
  const dir = join(tmp, name);
  await expect(
    trainRun(registry, spec(method), dir, {
      onStep: (e) => {
        if (e.step === 3) throw new Stop();
      },
    }),
  ).rejects.toThrow(Stop);
  return dir;
}

let n = 0;
const copy = (dir: string) => {
  const to = join(tmp, `copy-${++n}`);
  cpSync(dir, to, { recursive: true });
  return to;
};
const steps = (dir: string) => RunLog.read(join(dir, 'log.jsonl')).filter((r) => r.type === 'step').length;
const resume = (dir: string, flags: ResumeFlags = {}, onResumeChanges?: (l: string[]) => void) =>
  trainRun(registry, { ...spec({ id: 'lora', config: {} }), options: { ...spec({ id: 'lora', config: {} }).options } }, dir, { onResumeChanges }, flags);

/** The PeftError message of a resume that must be refused before any step; the log is left as it was. */
async function refused(dir: string, flags: ResumeFlags = {}): Promise<string> {
  const before = steps(dir);
  const tensors = tf.memory().numTensors;
  let message = '';
  try {
    await resume(dir, flags);
  } catch (err) {
    if (!(err instanceof PeftError)) throw err;
    message = err.message;
  }
  expect(message, 'refused with a PeftError').not.toBe('');
  expect(steps(dir)).toBe(before);
  expect(tf.memory().numTensors).toBe(tensors);
  return message;
}

/** Rewrites the last checkpoint's optimizer.safetensors through `edit`. */
async function editOptimizer(dir: string, edit: (t: Map<string, tf.Tensor>) => void): Promise<void> {
  const path = join(dir, 'checkpoints/last', OPTIMIZER_FILE);
  const tensors = loadTensors(path);
  edit(tensors);
  await saveTensors(path, tensors, { step: '2' });
  tf.dispose([...tensors.values()]);
}

beforeAll(async () => {
  registry = await createDefaultRegistry();
  data = await ensureDefaultDataset(join(tmp, 'cache'), { n: 6, size: 64, seed: 3 });
  lora = await halfRun('lora', { id: 'lora', config: { r: 2 } });
  adalora = await halfRun('adalora', { id: 'adalora', config: { init_r: 2, target_r: 1 } });
}, 300_000);

describe('the training state is checked against the model before the first step', () => {
  const moment = (t: Map<string, tf.Tensor>) => [...t.keys()].find((k) => k.startsWith('m/') && k.includes('lora_A'))!;
  it('an Adam moment of another shape (that would crash the step)', async () => {
    const dir = copy(lora);
    await editOptimizer(dir, (t) => {
      const k = moment(t);
      t.set(k, tf.zeros([t.get(k)!.shape[0]! + 1, t.get(k)!.shape[1]!]));
    });
    expect(await refused(dir)).toMatch(/optimizer\.safetensors: Adam's first moment 'm\/.*lora_A.*' has shape \[5,96\] but the parameter is \[4,96\]$/);
  });

  it('an Adam moment that would broadcast silently ([1, in] for [r, in])', async () => {
    const dir = copy(lora);
    await editOptimizer(dir, (t) => {
      const k = moment(t);
      t.set(k, tf.zeros([1, t.get(k)!.shape[1]!]));
    });
    expect(await refused(dir)).toMatch(/has shape \[1,96\] but the parameter is \[4,96\]$/);
  });

  it('a moment for a tensor the model does not train, a moment without its pair, a non-finite or negative moment, an int moment', async () => {
    const cases: [(t: Map<string, tf.Tensor>) => void, RegExp][] = [
      [(t) => void t.set('m/blocks.99.nothing', tf.zeros([2])), /'m\/blocks\.99\.nothing' is for 'blocks\.99\.nothing', which is not a trainable tensor of the model$/],
      [(t) => void t.delete(`v/${moment(t).slice(2)}`), /has no second moment 'v\/.*'$/],
      [(t) => void t.set(moment(t), tf.fill(t.get(moment(t))!.shape, Number.NaN)), /first moment .* holds a non-finite value$/],
      [(t) => { const v = `v/${moment(t).slice(2)}`; t.set(v, tf.fill(t.get(v)!.shape, -1)); }, /second moment .* holds a negative or non-finite value$/],
      [(t) => void t.set(moment(t), tf.zeros(t.get(moment(t))!.shape, 'int32')), /has dtype int32, expected float32$/],
      [(t) => { const k = [...t.keys()].find((x) => x.startsWith('param/') && x.includes('lora_B'))!; t.set(k, tf.fill(t.get(k)!.shape, Number.POSITIVE_INFINITY)); }, /tensor 'param\/.*lora_B.*' holds a non-finite value \(Inf or NaN\)$/],
    ];
    for (const [edit, message] of cases) {
      const dir = copy(lora);
      await editOptimizer(dir, edit);
      expect(await refused(dir)).toMatch(message);
    }
  });

  it("counters that disagree: adamStep is not the trainer's step", async () => {
    const dir = copy(lora);
    const path = join(dir, 'checkpoints/last/trainer_state.json');
    writeFileSync(path, JSON.stringify({ ...JSON.parse(readFileSync(path, 'utf8')), adamStep: 7 }));
    expect(await refused(dir)).toMatch(/trainer_state\.json: adamStep must equal step \(one optimiser update a step\), got 7 and 2$/);
  });
});

describe('flags given with --resume', () => {
  it('a flag that contradicts the run is an error naming the flag, the run\'s value and run.json', async () => {
    const runFile = join(lora, 'run.json').replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const cases: [ResumeFlags, string][] = [
      [{ method: 'adapter' }, `--method adapter contradicts the run's method lora \\(${runFile}\\)`],
      [{ lr: 0.5 }, `--lr 0.5 contradicts the run's learning rate 0.001 \\(${runFile}\\)`],
      [{ backbone: 'mobile_sam' }, `--backbone mobile_sam contradicts the run's backbone sam`],
      [{ 'lr-schedule': 'constant' }, `--lr-schedule constant contradicts the run's learning-rate schedule cosine`],
      [{ batch: 1 }, `--batch 1 contradicts the run's batch 2`],
      [{ methodFlags: { rank: 8 } }, `--rank 8 contradicts the run's r 2`],
      [{ methodFlags: { set: { alpha: 3 } } }, `--set alpha=3 contradicts the run's alpha 1`],
      [{ 'data-path': '/elsewhere' }, `--data-path /elsewhere contradicts the run's data path`],
      [{ 'freeze-decoder': true }, `--freeze-decoder contradicts the run's mask decoder, which trains`],
    ];
    for (const [flags, message] of cases) {
      const dir = copy(lora);
      expect(await refused(dir, flags)).toMatch(new RegExp(`^${message.replace(join(lora, 'run.json').replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), join(dir, 'run.json').replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))}`));
    }
  });

  it('--steps below the last checkpoint is refused; AdaLoRA, whose schedule is bound to the run\'s length, refuses a new length', async () => {
    expect(await refused(copy(lora), { steps: 1 })).toMatch(/^--steps 1 ends the run at step 1, before its last checkpoint \(step 2\)/);
    expect(await refused(copy(adalora), { steps: 6 })).toMatch(/^--steps 6 changes the run's length from 4 to 6 steps, but method 'adalora' bound total_step=4, init_warmup=0, final_warmup=2 to it/);
  });

  it('flags equal to the run\'s values are fine; --steps extends the run, says so and records it in run.json', async () => {
    const dir = copy(lora);
    const said: string[] = [];
    const s = await resume(dir, { method: 'lora', lr: 1e-3, batch: 2, 'lr-schedule': 'cosine', methodFlags: { rank: 2 }, steps: 5 }, (lines) => said.push(...lines));
    expect(said[0]).toBe('--steps 5: the run now ends at step 5 (it was 4)');
    expect(said[1]).toMatch(/cosine learning-rate schedule follows the new length/);
    expect(s.steps).toBe(5);
    expect(steps(dir)).toBe(5);
    expect(JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')).options.steps).toBe(5);
  });
});
