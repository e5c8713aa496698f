// Every flag of the commands given a wrong type, an out-of-range or a
// conflicting value, a missing path, an unknown id: `peft` (bin/run.js, as a
// user runs it) exits 2 with one line `peft: error: …` on stderr, no stack
// trace, and never starts training. Two subprocesses run at a time.
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureDefaultDataset } from '../../src/app/data/synth-output.js';
import { recordTable } from '../support/fuzz-harness.js';

const bin = fileURLToPath(new URL('../../bin/run.js', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'peft-cli-flags-'));
const out = join(tmp, 'runs');
// a small dataset (the embedded default has 1000 samples: generating it is not what these cases test)
const data = await ensureDefaultDataset(join(tmp, 'cache'), { n: 6, size: 64, seed: 1 });
const textFile = join(tmp, 'notes.txt');
writeFileSync(textFile, 'not a checkpoint, not a dataset\n');
const emptyDir = join(tmp, 'empty');
mkdirSync(emptyDir);
const csvDir = join(tmp, 'isic');
mkdirSync(csvDir);
writeFileSync(join(csvDir, 'train.csv'), ',img,seg\n0,../../etc/passwd,masks/a.png\n');

/** Per case: the command line and a pattern its one error line must match. */
type Case = [string[], RegExp];

/** `peft train` on the tiny preset; a flag given in `a` replaces the default one. */
const train = (...a: string[]) => {
  const base: [string, string][] = [['--data-path', data], ['--backbone', 'sam'], ['--preset', 'tiny'], ['--image-size', '64'], ['--steps', '1'], ['--out', out], ['--backend', 'cpu']];
  return ['train', ...base.filter(([f]) => !a.includes(f)).flat(), ...a];
};

const cases: Case[] = [
  // wrong types
  [train('--batch', 'abc'), /--batch.*integer/i],
  [train('--batch', '1.5'), /--batch.*integer/i],
  [train('--epochs', 'x'), /--epochs.*integer/i],
  [train('--steps', '2.5'), /--steps.*integer/i],
  [train('--seed', 'abc'), /--seed.*integer/i],
  [train('--rank', 'two'), /--rank.*integer/i],
  [train('--method', 'adalora', '--target-rank', 'x'), /--target-rank.*integer/i],
  [train('--method', 'adapter', '--mid-dim', 'wide'), /--mid-dim.*integer/i],
  [train('--image-size', 'big'), /--image-size.*integer/i],
  [train('--out-size', 'x'), /--out-size.*integer/i],
  [train('--val-every', 'often'), /--val-every.*integer/i],
  [train('--save-every', '1.5'), /--save-every.*integer/i],
  [train('--lr', 'fast'), /--lr must be a positive number/],
  [train('--alpha', 'abc'), /alpha/],
  [train('--set', 'r=abc'), /'r'/],
  [train('--set', 'nokey'), /--set 'nokey': expected key=value/],
  [train('--set', '=3'), /--set/],
  [train('--set', 'bogus=1'), /--set 'bogus'/],
  // out of range
  [train('--batch', '0'), /--batch must be an integer from 1 to 1024, got 0/],
  [train('--batch', '-1'), /--batch/],
  [train('--batch', '100000000'), /--batch/],
  [train('--epochs', '0'), /--epochs must be an integer from 1 to 100000000, got 0/],
  [train('--steps', '0'), /--steps must be an integer from 1 to 100000000, got 0/],
  [train('--steps', '-5'), /--steps/],
  [train('--rank', '0'), /invalid config 'r'/],
  [train('--rank', '-1'), /'r'/],
  [train('--rank', '100000'), /r=100000 is larger than min\(in, out\)/],
  [train('--method', 'adalora', '--rank', '0'), /init_r/],
  [train('--method', 'adalora', '--rank', '100000'), /init_r=100000 is larger than min\(in, out\)/],
  [train('--method', 'adapter', '--mid-dim', '100000'), /more than 4x/],
  [train('--method', 'adalora', '--rank', '4', '--target-rank', '8'), /target_r/],
  [train('--method', 'adalora', '--target-rank', '-1'), /target_r/],
  [train('--method', 'adapter', '--mid-dim', '0'), /mid_dim/],
  [train('--method', 'adapter', '--mid-dim', '-3'), /mid_dim/],
  [train('--image-size', '0'), /img_size|image/],
  [train('--image-size', '-64'), /img_size|image/],
  [train('--image-size', '100'), /img_size|multiple/],
  [train('--image-size', '1048576'), /img_size|image/],
  [train('--out-size', '0'), /--out-size/],
  [train('--out-size', '-4'), /--out-size/],
  [train('--out-size', '100000'), /--out-size/],
  [train('--val-every', '-1'), /--val-every/],
  [train('--save-every', '-1'), /--save-every/],
  [train('--lr', '0'), /--lr must be a positive number/],
  [train('--lr', '-1e-4'), /--lr/],
  [train('--lr', 'Infinity'), /--lr must be a positive number/],
  [train('--lr', 'NaN'), /--lr must be a positive number/],
  [train('--lr', '1e400'), /--lr must be a positive number/],
  [train('--seed', '99999999999999999999'), /--seed/],
  // conflicting
  [train('--method', 'adapter', '--rank', '4'), /--rank does not apply to method 'adapter'/],
  [train('--method', 'lora', '--target-rank', '2'), /--target-rank does not apply/],
  [train('--method', 'lora', '--mid-dim', '8'), /--mid-dim does not apply/],
  [train('--val-path', textFile), /--val-path/],
  [train('--dataset', 'isic'), /--data-path|isic|not a regular file/],
  [train('--resume'), /nothing to resume|--resume/],
  [train('--targets', 'nothing.matches'), /nothing\.matches|no site|match/],
  [train('--exp-name', '../escape'), /--exp-name/],
  // missing or wrong paths
  [train('--data-path', '/nonexistent/refuge'), /\/nonexistent\/refuge/],
  [train('--data-path', textFile), /notes\.txt/],
  [train('--data-path', emptyDir), /empty/],
  [train('--dataset', 'isic', '--data-path', '/nonexistent/train.csv'), /\/nonexistent\/train\.csv/],
  [train('--dataset', 'isic', '--data-path', emptyDir), /empty/],
  [train('--dataset', 'isic', '--data-path', join(csvDir, 'train.csv')), /outside the CSV's folder/],
  [train('--checkpoint', '/nonexistent/sam.pth'), /\/nonexistent\/sam\.pth/],
  [train('--checkpoint', textFile), /notes\.txt/],
  [train('--out', join(textFile, 'sub')), /notes\.txt/],
  // unknown ids and flags
  [train('--backbone', 'unet'), /unknown backbone 'unet'/],
  [train('--method', 'dora'), /unknown method 'dora'/],
  [train('--preset', 'vit_z'), /unknown preset/],
  [train('--dataset', 'coco'), /--dataset|coco/],
  [train('--loss', 'hinge'), /unknown --loss 'hinge'/],
  [train('--prompt', 'scribble'), /unknown --prompt 'scribble'/],
  [train('--backend', 'tpu'), /unknown backend 'tpu'/],
  [train('--bogus'), /bogus/],
  [train('extra-argument'), /extra-argument|Unexpected/],
  [['train', '--batch'], /--batch/],
  // the other commands
  [['eval'], /flag run/],
  [['eval', '--run', '/nonexistent/run'], /\/nonexistent\/run/],
  [['eval', '--run', emptyDir], /run\.json|empty/],
  [['eval', '--run', emptyDir, '--batch', '0'], /--batch|run\.json/],
  [['merge', '--run', '/nonexistent/run', '--out', join(tmp, 'm.safetensors')], /\/nonexistent\/run/],
  [['merge', '--run', emptyDir], /flag out/],
  [['export', '--run', emptyDir, '--out', join(tmp, 'x'), '--format', 'onnx'], /--format|onnx/],
  [['plan', '--backbone', 'sam', '--preset', 'tiny', '--rank', '0'], /'r'/],
  [['plan', '--backbone', 'sam', '--preset', 'tiny', '--image-size', '30'], /img_size|multiple/],
  [['plan', '--method', 'adapter', '--target-rank', '2'], /does not apply/],
  [['verify', 'nosuch'], /nosuch/],
  [['report', '/nonexistent/run', '--out', join(tmp, 'r')], /\/nonexistent\/run/],
  [['info'], /id|argument/i],
  [['parity'], /dir|argument/i],
  [['parity', textFile], /notes\.txt/],
  // fixed in src/commands (were open in the first reliability run)
  // an empty name makes the run folder --out itself
  [train('--exp-name', '', '--out', join(tmp, 'fresh-out')), /--exp-name/],
  [['verify', 'lora', '--runs', '0'], /--runs/],
  [['verify', 'lora', '--runs', '-1'], /--runs/],
  [['verify', 'lora', '--time-limit', '0'], /--time-limit/],
  // issue 19, class 11: every numeric and path flag goes through cli/flag-values.ts
  [['eval', '--run', emptyDir, '--batch', '0'], /^peft: error: --batch must be an integer from 1 to 1024, got 0$/],
  [['eval', '--run', emptyDir, '--batch', '-2'], /^peft: error: --batch must be an integer from 1 to 1024, got -2$/],
  [['eval', '--run', emptyDir, '--checkpoint', ''], /^peft: error: --checkpoint must name a file or folder, got ''$/],
  [['eval', '--run', emptyDir, '--adapter', ''], /^peft: error: --adapter must name a file or folder, got ''$/],
  [['plan', '--image-size', '65536'], /^peft: error: --image-size must be an integer from 16 to 4096, got 65536$/],
  [train('--checkpoint', ''), /--checkpoint must name a file or folder/],
  [train('--adapter', ''), /--adapter must name a file or folder/],
  [train('--data-path', ''), /--data-path must name a file or folder/],
  [train('--vis', '0'), /--vis must be an integer >= 1, got 0/],
  [['predict', '--run', emptyDir, '--frame', '0', '--point', '1,1', textFile], /--frame must be an integer >= 1, got 0/],
  [['export', '--run', emptyDir, '--out', ''], /--out must name a file or folder/],
  [['serve', '--run', ''], /--run must name a file or folder/],
  [['report', emptyDir, '--worst', '-1'], /--worst must be an integer >= 0, got -1/],
  [['data', 'synth', '--out', join(tmp, 'synth'), '--n', '0'], /--n must be an integer from 1 to 100000, got 0/],
  [['sweep', '--jobs', '0'], /^peft: error: --jobs must be an integer >= 1, got 0$/],
  [['sweep', '--out', ''], /^peft: error: --out must name a file or folder, got ''$/],
  [['worker', '--queue', 'redis://127.0.0.1:1', '--concurrency', '-1'], /^peft: error: --concurrency must be an integer >= 1, got -1$/],
];


interface Result {
  args: string[];
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function peft(args: string[]): Promise<Result> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const p = spawn(process.execPath, [bin, ...args], { env: { ...process.env, PEFT_BACKEND: 'cpu', PEFT_CACHE: join(tmp, 'cache'), PEFT_PLUGINS: '' } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    // a case that starts training or hangs is killed, and fails
    const timer = setTimeout(() => p.kill('SIGKILL'), 60_000);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ args, code, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

async function pool<T, R>(items: T[], n: number, f: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await f(items[i]!);
      }
    }),
  );
  return out;
}

/** `npm test` runs every fourth case; PEFT_CLI_ALL=1 (`npm run reliability`) runs them all. */
const selected = process.env.PEFT_CLI_ALL ? cases : cases.filter((_, i) => i % 4 === 0);

function problemOf(r: Result, pattern: RegExp): string | undefined {
  const shown = r.args.join(' ').replace(out, '<out>').replace(tmp, '<tmp>');
  const lines = r.stderr.trim().split('\n').filter(Boolean);
  if (r.code !== 2) return `${shown}: exit ${r.code} (${r.stderr.trim().split('\n')[0] ?? ''})`;
  if (lines.length !== 1) return `${shown}: ${lines.length} lines on stderr: ${JSON.stringify(r.stderr.slice(0, 400))}`;
  if (!/^peft: error: /.test(lines[0]!)) return `${shown}: not a 'peft: error:' line: ${lines[0]}`;
  if (/\bat .*\.[jt]s:\d+/.test(r.stderr)) return `${shown}: a stack trace`;
  if (!pattern.test(lines[0]!)) return `${shown}: '${lines[0]}' does not match ${pattern}`;
  if (/^step \d+/m.test(r.stdout)) return `${shown}: training started`;
  return undefined;
}

describe('peft CLI: bad flags', () => {
  it(`${selected.length} of ${cases.length} wrong, out-of-range, conflicting and unknown values exit 2 with one line`, async () => {
    const t0 = performance.now();
    const results = await pool(selected, 2, ([args]) => peft(args));
    const problems = results.map((r, i) => problemOf(r, selected[i]![1]));
    recordTable('CLI flags', 'bad flag values exit 2 with one clear line', problems.map((p) => (p ? 'failed' : 'rejected')), (performance.now() - t0) / 1000);
    const failed = problems.filter(Boolean);
    expect(failed, failed.join('\n')).toEqual([]);
  }, 600_000);
});
