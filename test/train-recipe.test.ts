// The recipe a run gets when the user leaves its settings unset, through the
// built-in backbones (each declares its from-scratch recipe), `peft plan`'s
// library call, `trainRun`, and the command's one line at the start; and the
// line `peft train` prints when the native kernels are off although their
// addon is installed.
import { beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createDefaultRegistry } from '../src/builtins.js';
import type { Registry } from '../src/core/registry/registry.js';
import { ensureDefaultDataset } from '../src/app/data/synth-output.js';
import { planRun } from '../src/app/runs/plan-run.js';
import { trainRun } from '../src/app/runs/train-run.js';
import type { ResolvedRecipe } from '../src/app/runs/recipe.js';

const bin = fileURLToPath(new URL('../bin/run.js', import.meta.url));
const failingNative = fileURLToPath(new URL('./support/native-load-fails.cjs', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'peft-recipe-'));
let registry: Registry;
let data: string;

beforeAll(async () => {
  registry = await createDefaultRegistry();
  data = await ensureDefaultDataset(join(tmp, 'cache'), { n: 6, size: 64, seed: 3 });
});

const plan = (backbone: string, method: string, run: { steps?: number; epochs?: number } = {}, fromCheckpoint = false) =>
  planRun(registry, { backbone: { id: backbone }, method: { id: method }, trainDecoder: true, run: { batch: 2, ...run }, fromCheckpoint });

describe('the recipe of a run', () => {
  it("plan: from scratch each backbone's own; with --checkpoint the reference's one epoch; --steps/--epochs win", () => {
    const scratch = plan('mobile_sam', 'lora');
    expect(scratch.recipe.options).toEqual({ lr: 3e-3, lrSchedule: 'cosine', steps: 2000 });
    expect(scratch.run).toEqual({ totalSteps: 2000, from: "mobile_sam's from-scratch recipe" });
    expect(plan('sam', 'lora').recipe.options).toEqual({ lr: 3e-3, lrSchedule: 'cosine', steps: 1600 });
    expect(plan('efficient_sam', 'lora').recipe.options).toEqual({ lr: 3e-3, lrSchedule: 'cosine', steps: 1600 });
    const pretrained = plan('mobile_sam', 'lora', {}, true);
    expect(pretrained.recipe.options).toEqual({ lr: 1e-4, lrSchedule: 'constant' });
    expect(pretrained.run.totalSteps).toBe(400); // 800 training samples of the embedded data, batch 2
    expect(plan('mobile_sam', 'lora', { steps: 10 }).run).toEqual({ totalSteps: 10, from: '--steps 10' });
    expect(plan('mobile_sam', 'lora', { epochs: 2 }).run.totalSteps).toBe(800);
    // a method whose schedule follows the run gets the recipe's length
    expect(plan('sam', 'adalora').method.bound).toMatchObject({ total_step: 1600 });
  });

  it('trainRun fills what the request leaves unset from the recipe, and run.json records it', async () => {
    const seen: ResolvedRecipe[] = [];
    const dir = join(tmp, 'run');
    const summary = await trainRun(
      registry,
      {
        backbone: { id: 'sam', preset: 'tiny', overrides: { img_size: 64 } },
        method: { id: 'lora' },
        dataset: { kind: 'refuge', path: data },
        augment: false,
        options: { batch: 2, steps: 1, valEvery: 0, seed: 1, loss: 'bce', prompt: 'click' },
      },
      dir,
      { onRecipe: (r) => seen.push(r) },
    );
    expect(summary.steps).toBe(1);
    expect(seen.map((r) => r.overridden)).toEqual([['--steps']]);
    const spec = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')) as { options: Record<string, unknown> };
    expect(spec.options).toMatchObject({ lr: 3e-3, lrSchedule: 'cosine', steps: 1 });
  });

  it('peft train prints the recipe in one line, and says when the installed native kernels do not load', () => {
    const r = spawnSync(
      process.execPath,
      [bin, 'train', '-net', 'sam', '-encoder', 'tiny', '-image_size', '64', '--data-path', data, '--steps', '1', '--val-every', '0', '--out', join(tmp, 'cli'), '--exp-name', 'x'],
      { encoding: 'utf8', env: { ...process.env, PEFT_BACKEND: 'cpu', PEFT_NATIVE: '', NODE_OPTIONS: `--require ${failingNative}` }, timeout: 300_000 },
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^recipe: from scratch \(no --checkpoint\), sam's: lr 3e-3, cosine, 1 step \(--steps\) — any of --lr\/--lr-schedule\/--steps\/--epochs overrides$/m);
    expect(r.stdout.match(/^recipe: /gm)).toHaveLength(1);
    const notices = r.stderr.split('\n').filter((l) => l.includes('native kernels off'));
    expect(notices).toEqual([
      'peft: warning: native kernels off: libopenblas.so.0: cannot open shared object file: No such file or directory; this run uses cpu alone, about 2-4x slower; fix: apt-get install libopenblas-dev && npm rebuild @peftjs/native (PEFT_NATIVE=0 turns them off without this line)',
    ]);
  });
});
