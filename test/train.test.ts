// The training loop end to end, at a tiny size: determinism, exact resume,
// no tensor leaks, refusal to overwrite, and the non-finite-loss stop.
import { describe, expect, it, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, mkdirSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDefaultRegistry } from '../src/builtins.js';
import type { Registry } from '../src/core/registry/registry.js';
import { ensureDefaultDataset } from '../src/app/data/synth-output.js';
import type { RunSpec } from '../src/app/runs/run-spec.js';
import { buildPeftModel } from '../src/app/runs/run-spec.js';
import { trainRun } from '../src/app/runs/train-run.js';
import { RunLog } from '../src/app/train/run-log.js';
import { Adam } from '../src/app/train/adam.js';
import { trainStep, makeBatch } from '../src/app/train/step.js';
import { PeftError } from '../src/core/errors.js';

let registry: Registry;
let data: string;
const tmp = mkdtempSync(join(tmpdir(), 'peft-train-'));

beforeAll(async () => {
  registry = await createDefaultRegistry();
  data = await ensureDefaultDataset(join(tmp, 'cache'), { n: 6, size: 64, seed: 3 });
});

function spec(overrides: Partial<RunSpec['options']> = {}, method = 'lora'): RunSpec {
  return {
    version: 1,
    createdAt: '2026-01-01T00:00:00Z',
    backbone: { id: 'sam', preset: 'tiny', overrides: { img_size: 64 } },
    method: { id: method, config: method === 'adalora' ? { init_r: 4, target_r: 2, init_warmup: 1, final_warmup: 1, total_step: 4, mask_interval: 1 } : {} },
    trainDecoder: true,
    imageSize: 64,
    outSize: 16,
    dataset: { kind: 'refuge', path: data },
    augment: true,
    options: { batch: 2, lr: 1e-3, steps: 4, valEvery: 1, seed: 5, loss: 'bce', prompt: 'click', ...overrides },
  };
}

function losses(runDir: string): number[] {
  return RunLog.read(join(runDir, 'log.jsonl')).flatMap((r) => (r.type === 'step' ? [r.loss] : []));
}

describe('training', () => {
  it('is deterministic, resumes exactly after an interruption, and leaks no tensors', async () => {
    const before = tf.memory().numTensors;
    const full = join(tmp, 'full');
    const a = await trainRun(registry, spec(), full);
    expect(tf.memory().numTensors).toBe(before);
    expect(a.steps).toBe(4);
    expect(a.final).not.toBeNull();
    expect(existsSync(join(full, 'summary.json'))).toBe(true);
    const fullLosses = losses(full);
    expect(fullLosses).toHaveLength(4);
    expect(fullLosses.every(Number.isFinite)).toBe(true);

    // the same seed gives the same curve
    const again = join(tmp, 'again');
    await trainRun(registry, spec(), again);
    expect(losses(again)).toEqual(fullLosses);

    // stopped after step 3 (as SIGINT does), then resumed
    const cut = join(tmp, 'cut');
    let n = 0;
    const stopped = await trainRun(registry, spec(), cut, { shouldStop: () => ++n >= 3 });
    expect(stopped.stoppedEarly).toBe(true);
    expect(stopped.steps).toBe(3);
    expect(existsSync(join(cut, 'summary.json'))).toBe(false);
    expect(existsSync(join(cut, 'checkpoints/last/trainer_state.json'))).toBe(true);
    const resumed = await trainRun(registry, spec(), cut, {}, true);
    expect(resumed.steps).toBe(4);
    expect(losses(cut)).toEqual(fullLosses);
    expect(resumed.final).toEqual(a.final);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('trains AdaLoRA with its schedule on the global step, saves the rank pattern, and resumes exactly', async () => {
    const dir = join(tmp, 'adalora');
    const s = await trainRun(registry, spec({}, 'adalora'), dir);
    expect(s.steps).toBe(4);
    // interrupted after step 2 (before the final-phase masks), resumed: the same curve and metrics
    const cut = join(tmp, 'adalora-cut');
    let n = 0;
    await trainRun(registry, spec({}, 'adalora'), cut, { shouldStop: () => ++n >= 2 });
    const resumed = await trainRun(registry, spec({}, 'adalora'), cut, {}, true);
    expect(losses(cut)).toEqual(losses(dir));
    expect(resumed.final).toEqual(s.final);
    const cfg = JSON.parse(readFileSync(join(dir, 'checkpoints/last/adapter_config.json'), 'utf8'));
    const pattern = JSON.stringify(cfg.state);
    expect(pattern.length).toBeGreaterThan(2);
  });

  it('refuses to train into a folder that holds other files, and to resume nothing', async () => {
    const dir = join(tmp, 'occupied');
    mkdirSync(dir);
    writeFileSync(join(dir, 'notes.txt'), 'mine');
    await expect(trainRun(registry, spec(), dir)).rejects.toThrow(/already exists and is not empty/);
    expect(readFileSync(join(dir, 'notes.txt'), 'utf8')).toBe('mine');
    await expect(trainRun(registry, spec(), join(tmp, 'nothing'), {}, true)).rejects.toThrow(/nothing to resume/);
  });

  it('stops with a clear error on a non-finite loss, leaving the weights untouched', async () => {
    const peft = buildPeftModel(registry, spec());
    try {
      const adam = new Adam({ lr: 1e-3 });
      const before = peft.trainable().map(([, p]) => p.variable.dataSync().slice());
      const size = 64;
      const sample = { name: 'x', image: new Float32Array(size * size * 3), target: new Float32Array(16 * 16 * 2), size, outSize: 16, channels: 2 };
      const batch = makeBatch(peft, [sample], {});
      const count = tf.memory().numTensors;
      expect(() => trainStep(peft, adam, batch, (logits) => tf.mul(tf.sum(logits), NaN) as tf.Scalar, 1)).toThrow(PeftError);
      expect(() => trainStep(peft, adam, batch, (logits) => tf.mul(tf.sum(logits), NaN) as tf.Scalar, 1)).toThrow(/loss became NaN at step 1/);
      expect(tf.memory().numTensors).toBe(count);
      peft.trainable().forEach(([, p], i) => expect(p.variable.dataSync()).toEqual(before[i]));
      tf.dispose([batch.images, batch.targets]);
      adam.dispose();
    } finally {
      peft.dispose();
    }
  });
});
