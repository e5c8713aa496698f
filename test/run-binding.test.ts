// A method learns the run's length: `peft train --method adalora --steps 200`
// prunes to its target budget by the end (AdaLoRA's total_step and warm-ups
// follow --steps), `peft plan` prints that schedule, and a key the user sets
// wins. The CLI as a user runs it: a subprocess of bin/run.js (built by `npm ci`).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureDefaultDataset } from '../src/app/data/synth-output.js';
import { createDefaultRegistry } from '../src/builtins.js';
import { checkFlagKeys } from '../src/core/registry/method-config.js';

const bin = fileURLToPath(new URL('../bin/run.js', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'peft-run-binding-'));
let data: string;

function peft(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, PEFT_BACKEND: 'cpu', PEFT_CACHE: join(tmp, 'cache') }, timeout: 300_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A small SAM: 64 px images, batch 1, on a 24-image synthetic REFUGE (19 training images). */
const small = () => ['--backbone', 'sam', '--preset', 'tiny', '--image-size', '64', '--batch', '1', '--data-path', data, '--val-every', '0', '--out', join(tmp, 'runs')];

function savedConfig(run: string, checkpoint = 'last') {
  return JSON.parse(readFileSync(join(tmp, 'runs', run, 'checkpoints', checkpoint, 'adapter_config.json'), 'utf8')) as {
    config: Record<string, number>;
    state: { rank_pattern: Record<string, boolean[]> | null };
  };
}

beforeAll(async () => {
  data = await ensureDefaultDataset(join(tmp, 'data'), { n: 24, size: 64, seed: 3 });
});

describe('AdaLoRA follows the run it trains in', () => {
  it('train --steps 200 prunes to the target: the final rank pattern keeps exactly target_r x the adapted matrices', () => {
    const r = peft('train', '--method', 'adalora', '--steps', '200', '--exp-name', 'ada200', ...small());
    expect(r.code, r.stderr).toBe(0);
    const run = JSON.parse(readFileSync(join(tmp, 'runs', 'ada200', 'run.json'), 'utf8'));
    // run.json records the bound schedule, so eval and --resume rebuild the same method
    expect(run.method.config).toMatchObject({ total_step: 200, init_warmup: 33, final_warmup: 100, init_r: 12, target_r: 8 });
    const { config, state } = savedConfig('ada200');
    const pattern = Object.values(state.rank_pattern ?? {});
    expect(pattern.length).toBeGreaterThan(0);
    expect(pattern.every((p) => p.length === config.init_r)).toBe(true);
    const kept = pattern.reduce((n, p) => n + p.filter(Boolean).length, 0);
    expect(kept).toBe(config.target_r * pattern.length);
    // pruned unevenly: the budget moved between matrices by importance
    expect(new Set(pattern.map((p) => p.filter(Boolean).length)).size).toBeGreaterThan(1);
  });

  it('plan --steps 200 prints the schedule the run gets', () => {
    const r = peft('plan', '--method', 'adalora', '--steps', '200', '--backbone', 'sam', '--preset', 'tiny', '--image-size', '64');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^run: +200 steps \(--steps 200\)$/m);
    expect(r.stdout).toMatch(/^set by the run length: total_step=200, init_warmup=33, final_warmup=100$/m);
    // sam tiny: 4 blocks x (qkv, proj, fc1, fc2) = 16 matrices
    expect(r.stdout).toContain('rank budget: 192 (12 x 16 matrices) until step 33, cubic down to 128 by step 100, then 128 (8 x 16) to step 200 with importance frozen; masks every 10 steps while cubic, then every step');
    // epochs count over the embedded dataset, as train does without --data-path
    const epochs = peft('plan', '--method', 'adalora', '--epochs', '2', '--batch', '4', '--json');
    expect(epochs.code, epochs.stderr).toBe(0);
    const plan = JSON.parse(epochs.stdout);
    expect(plan.run.totalSteps).toBe(400);
    expect(plan.run.from).toBe('2 epochs of 200 steps (800 training samples of the default dataset, batch 4)');
    expect(plan.methodConfig).toMatchObject({ total_step: 400, init_warmup: 66, final_warmup: 200 });
  });

  it('a key the user sets wins over the run binding, in train and in plan', () => {
    const plan = peft('plan', '--method', 'adalora', '--steps', '20', '--set', 'total_step=30', '--json');
    expect(plan.code, plan.stderr).toBe(0);
    expect(JSON.parse(plan.stdout)).toMatchObject({ methodConfig: { total_step: 30, init_warmup: 5, final_warmup: 15 }, boundByRun: { init_warmup: 5, final_warmup: 15 } });
    const r = peft('train', '--method', 'adalora', '--steps', '20', '--set', 'total_step=30', '--set', 'mask_interval=3', '--exp-name', 'set30', ...small());
    expect(r.code, r.stderr).toBe(0);
    const run = JSON.parse(readFileSync(join(tmp, 'runs', 'set30', 'run.json'), 'utf8'));
    expect(run.method.config).toMatchObject({ total_step: 30, init_warmup: 5, final_warmup: 15, mask_interval: 3 });
    // a warm-up the run cannot hold is the user's error, named
    const bad = peft('plan', '--method', 'adalora', '--steps', '20', '--set', 'init_warmup=40');
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/method 'adalora' \(total_step=20, final_warmup=0 from the run's 20 steps\): invalid config 'total_step': must be > init_warmup \+ final_warmup/);
  });

  it("every built-in method binds its flags to keys of its own config", async () => {
    const registry = await createDefaultRegistry();
    for (const def of registry.methods()) {
      expect(def.flagKeys, def.id).toBeDefined();
      expect(() => checkFlagKeys(def), def.id).not.toThrow();
    }
  });

  it('info states the rule and the flags a method binds', () => {
    const r = peft('info', 'adalora');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Run binding \(train follows the run's length\)\n {2}Unless set: total_step = the run's optimiser steps T .*init_warmup = floor\(T \/ 6\), final_warmup = floor\(T \/ 2\)/m);
    expect(r.stdout).toMatch(/^Flags \(the key each sets\): --rank \(init_r\), --target-rank \(target_r\), --alpha \(alpha\), --targets \(targets\)/m);
    expect(r.stdout).toMatch(/^shown as: AdaLoRA \(Medical-SAM-Adapter -mod sam_adalora\)$/m);
    expect(peft('info', 'lora').stdout).not.toMatch(/Run binding/);
  });

  it('a method without a run binding keeps its config; a flag its method does not bind is refused by name', () => {
    const r = peft('plan', '--method', 'lora', '--steps', '50', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ boundByRun: {}, schedule: [] });
    const bad = peft('plan', '--method', 'lora', '--target-rank', '2');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe("peft: error: --target-rank does not apply to method 'lora' (it binds --rank (r), --alpha (alpha), --targets (targets); any key with --set key=value)\n");
  });
});
