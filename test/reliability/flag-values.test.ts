// Issue 19, class 11: flags and adapter values. Every command's numeric and
// path flags go through one mechanism (cli/flag-values.ts): an integer out of
// its bounds or a path that is empty is one line, exit 2. Hugging Face PEFT
// adapters' shared keys are checked by core (io/hf-peft.ts: r, lora_alpha,
// lora_dropout, rank_pattern/alpha_pattern, target_modules, which must select
// the modules the weights are for), the methods' own keys by their codec, and
// no adapter loads a weight that is Inf or NaN.
import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDefaultRegistry } from '../../src/builtins.js';
import { PeftError } from '../../src/core/errors.js';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, saveAdapter } from '../../src/core/io/adapter-files.js';
import { adapterMethod, exportHfPeft, loadAnyAdapter } from '../../src/core/io/hf-peft.js';
import { loadTensors, saveTensors } from '../../src/core/io/safetensors.js';
import type { PeftModel } from '../../src/core/peft/compose.js';
import type { Registry } from '../../src/core/registry/registry.js';
import { buildPeftModel, type RunSpec } from '../../src/app/runs/run-spec.js';
import { evaluateRun } from '../../src/app/runs/evaluate-run.js';
import { planRun } from '../../src/app/runs/plan-run.js';
import { bin } from '../support/cli-runs.js';

const tmp = mkdtempSync(join(tmpdir(), 'peft-flag-values-'));
let registry: Registry;
let peft: PeftModel;
let hf: string;
let own: string;

const spec = (): RunSpec => ({
  version: 1,
  createdAt: new Date(0).toISOString(),
  backbone: { id: 'mobile_sam', preset: 'tiny', overrides: { img_size: 64 } },
  method: { id: 'lora', config: { ...registry.createMethod('lora', { r: 2, targets: ['attn.qkv'] }).config } },
  trainDecoder: false,
  imageSize: 64,
  outSize: 16,
  dataset: { kind: 'refuge', path: null },
  augment: false,
  options: { batch: 1, lr: 1e-4, valEvery: 1, seed: 3, loss: 'bce', prompt: 'click' },
});

beforeAll(async () => {
  registry = await createDefaultRegistry();
  peft = buildPeftModel(registry, spec());
  let i = 0;
  for (const [, p] of peft.trainable()) tf.tidy(() => p.assign(tf.add(p.variable, tf.randomUniform(p.shape, -0.05, 0.05, 'float32', ++i))));
  hf = join(tmp, 'hf');
  await exportHfPeft(hf, peft, registry);
  own = join(tmp, 'own');
  await saveAdapter(own, peft);
});
afterAll(() => {
  peft.dispose();
  rmSync(tmp, { recursive: true, force: true });
});

interface Result {
  code: number | null;
  stderr: string;
}

function peftCli(args: string[]): Promise<Result> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [bin, ...args], { env: { ...process.env, PEFT_BACKEND: 'cpu', PEFT_PLUGINS: '' } });
    let stderr = '';
    p.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), 60_000);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

describe('numeric and path flags: one mechanism, one line', () => {
  const run = join(tmp, 'no-run');
  const cases: [string[], string][] = [
    [['eval', '--run', run, '--batch', '0'], '--batch must be an integer from 1 to 1024, got 0'],
    [['eval', '--run', run, '--batch', '-2'], '--batch must be an integer from 1 to 1024, got -2'],
    [['eval', '--run', run, '--checkpoint', ''], "--checkpoint must name a file or folder, got ''"],
    [['eval', '--run', run, '--adapter', ''], "--adapter must name a file or folder, got ''"],
    [['eval', '--run', ''], "--run must name a file or folder, got ''"],
    [['plan', '--image-size', '65536'], '--image-size must be an integer from 16 to 4096, got 65536'],
    [['train', '--checkpoint', ''], "--checkpoint must name a file or folder, got ''"],
    [['train', '--steps', '1e3'], '--steps must be an integer from 1 to 100000000, got 1e3'],
    [['predict', '--adapter', '', 'x.png'], "--adapter must name a file or folder, got ''"],
    [['merge', '--run', run, '--out', ' '], "--out must name a file or folder, got"],
    [['report', run, '--samples', '-1'], '--samples must be an integer >= 0, got -1'],
    [['data', 'synth', '--out', join(tmp, 's'), '--size', '65536'], '--size must be an integer from 16 to 4096, got 65536'],
  ];
  it(`${cases.length} flag values are refused with exit 2 and one line`, async () => {
    for (const [args, message] of cases) {
      const r = await peftCli(args);
      const lines = r.stderr.trim().split('\n');
      expect([r.code, lines.length, lines[0]], args.join(' ')).toEqual([2, 1, expect.stringContaining(`peft: error: ${message}`)]);
    }
  }, 300_000);
});

describe('library callers get the same bounds as the flags', () => {
  it('evaluateRun with batch 0 and planRun with an image size of 65536 are refused before any model is built', async () => {
    await expect(evaluateRun(registry, join(tmp, 'no-run'), { batch: 0 })).rejects.toThrow(/^--batch must be an integer from 1 to 1024, got 0$/);
    expect(() => planRun(registry, { backbone: { id: 'sam', preset: 'tiny', overrides: { img_size: 65536 } }, method: { id: 'lora' }, trainDecoder: true, run: { batch: 1, steps: 1 } })).toThrow(
      /^backbone 'sam': img_size \(the image size\) must be an integer from 16 to 4096, got 65536$/,
    );
  });
});

/** A copy of the Hugging Face adapter with its config changed by `edit`. */
function hfWith(edit: (c: Record<string, unknown>) => void): string {
  const dir = mkdtempSync(join(tmp, 'hf-'));
  cpSync(hf, dir, { recursive: true });
  const c = JSON.parse(readFileSync(join(dir, ADAPTER_CONFIG_FILE), 'utf8')) as Record<string, unknown>;
  edit(c);
  writeFileSync(join(dir, ADAPTER_CONFIG_FILE), JSON.stringify(c));
  return dir;
}

/** A copy of an adapter folder whose first tensor named like `like` gets `value` at index 0. */
async function withWeight(from: string, like: RegExp, value: number): Promise<string> {
  const dir = mkdtempSync(join(tmp, 'w-'));
  cpSync(from, dir, { recursive: true });
  const path = join(dir, ADAPTER_WEIGHTS_FILE);
  const tensors = loadTensors(path);
  const key = [...tensors.keys()].find((k) => like.test(k))!;
  const values = tensors.get(key)!.dataSync().slice();
  values[0] = value;
  tensors.set(key, tf.tensor(values, tensors.get(key)!.shape, 'float32'));
  await saveTensors(path, tensors);
  tf.dispose([...tensors.values()]);
  return dir;
}

/** The PeftError message of loading `dir` into the model and of reading its method (both must refuse, unless `loadOnly`). */
function refusal(dir: string, loadOnly = false): string {
  const messages: string[] = [];
  const attempts = [() => loadAnyAdapter(dir, peft, registry), ...(loadOnly ? [] : [() => adapterMethod(dir, { sites: peft.backbone.sites(), decoderPath: peft.backbone.decoderPath }, registry)])];
  for (const attempt of attempts) {
    try {
      attempt();
      messages.push('accepted');
    } catch (err) {
      if (!(err instanceof PeftError)) throw err;
      messages.push(err.message);
    }
  }
  expect(new Set(messages).size, messages.join(' | ')).toBe(1);
  return messages[0]!;
}

describe('Hugging Face adapter values', () => {
  it('the exported adapter loads as it is (the cases below change one value each)', () => {
    expect(loadAnyAdapter(hf, peft, registry).format).toBe('hf-peft');
  });

  const cases: [string, (c: Record<string, any>) => void, RegExp][] = [
    ['r: -4', (c) => void (c.r = -4), /adapter_config\.json: 'r' must be an integer from 1 to 65536, got -4$/],
    ['r: 2.5', (c) => void (c.r = 2.5), /'r' must be an integer from 1 to 65536, got 2\.5$/],
    ['lora_dropout: 2', (c) => void (c.lora_dropout = 2), /'lora_dropout' must be a number in \[0, 1\), got 2$/],
    ['lora_alpha: 1e308', (c) => void (c.lora_alpha = 1e308), /'lora_alpha' must be a finite number with \|lora_alpha\| <= 1000000, got 1e\+308$/],
    ['lora_alpha: "8"', (c) => void (c.lora_alpha = '8'), /'lora_alpha' must be a finite number/],
    ['rank_pattern: "x"', (c) => void (c.rank_pattern = 'x'), /'rank_pattern' must be an object of module-name patterns, got x$/],
    ['rank_pattern: [1]', (c) => void (c.rank_pattern = [1]), /'rank_pattern' must be an object/],
    ['alpha_pattern value Infinity-like', (c) => void (c.alpha_pattern = { 'blocks.0.attn.qkv': 1e300 }), /'alpha_pattern' 'blocks\.0\.attn\.qkv' must be a finite number/],
    ['target_modules: 5', (c) => void (c.target_modules = 5), /'target_modules' must be a list of module names or a regular expression$/],
  ];
  for (const [name, edit, message] of cases) {
    it(`${name}: refused in one line`, () => {
      expect(refusal(hfWith(edit))).toMatch(message);
    });
  }

  it("LoRA's rank_pattern values are ranks (the codec's own key)", () => {
    expect(refusal(hfWith((c) => void (c.rank_pattern = { 'blocks.0.attn.qkv': -1 })), true)).toMatch(/'rank_pattern' entry "blocks\.0\.attn\.qkv" must be a rank \(an integer >= 1\), got -1$/);
  });

  it('target_modules that match nothing, or not the modules the weights are for, are refused (not: whatever the weights file holds)', () => {
    expect(refusal(hfWith((c) => void (c.target_modules = ['nothing_here'])), true)).toMatch(/'target_modules' \["nothing_here"\] matches no module of the model$/);
    expect(refusal(hfWith((c) => void (c.target_modules = ['mask_decoder'])), true)).toMatch(/'base_model\.model\..*lora_A\.weight' belongs to a module that 'target_modules' \["mask_decoder"\] does not select$/);
  });

  it('a weight that is Inf or NaN: one line naming the tensor (HF and peftjs adapters), nothing assigned', async () => {
    const before = await peft.trainable()[0]![1].variable.data();
    expect(refusal(await withWeight(hf, /lora_B/, Number.POSITIVE_INFINITY), true)).toMatch(/adapter_model\.safetensors: 'base_model\.model\..*lora_B\.weight' holds a non-finite value \(Infinity at index 0\) once loaded/);
    expect(refusal(await withWeight(hf, /lora_A/, Number.NaN), true)).toMatch(/'base_model\.model\..*lora_A\.weight' holds a non-finite value \(NaN at index 0\)/);
    expect(refusal(await withWeight(own, /lora_A/, Number.NaN), true)).toMatch(/adapter_model\.safetensors: tensor '.*lora_A' holds a non-finite value \(NaN at index 0\)$/);
    expect(await peft.trainable()[0]![1].variable.data()).toEqual(before);
  });

  it('a large but finite lora_alpha that overflows a weight once scaled is caught where the weight is staged', async () => {
    const dir = await withWeight(hf, /lora_B/, 3e38);
    const c = JSON.parse(readFileSync(join(dir, ADAPTER_CONFIG_FILE), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(dir, ADAPTER_CONFIG_FILE), JSON.stringify({ ...c, lora_alpha: 1e6 }));
    expect(refusal(dir, true)).toMatch(/lora_B\.weight' holds a non-finite value \(Infinity at index 0\) once loaded; lora_alpha is 1000000$/);
  });
});

describe('--resume on the command line', () => {
  it('--method adapter on a LoRA run is an error naming the flag and the run\'s method', async () => {
    const out = join(tmp, 'runs');
    mkdirSync(join(out, 'x'), { recursive: true });
    writeFileSync(join(out, 'x', 'run.json'), JSON.stringify(spec()));
    const r = await peftCli(['train', '--resume', '--out', out, '--exp-name', 'x', '--method', 'adapter', '--steps', '30', '--lr', '0.5', '--backbone', 'sam']);
    expect([r.code, r.stderr.trim()]).toEqual([2, `peft: error: --backbone sam contradicts the run's backbone mobile_sam (${join(out, 'x', 'run.json')}); a resumed run keeps its settings: drop the flag, or start a new run`]);
    const r2 = await peftCli(['train', '--resume', '--out', out, '--exp-name', 'x', '--method', 'adapter']);
    expect(r2.stderr.trim()).toBe(`peft: error: --method adapter contradicts the run's method lora (${join(out, 'x', 'run.json')}); a resumed run keeps its settings: drop the flag, or start a new run`);
  }, 120_000);
});
