// Helpers of the tests that run `peft` as a user does (bin/run.js, from the
// build in dist/) and kill it: the child process, what its run folder holds
// (log records, the last checkpoint read in full), and the comparison a
// resumed run must pass against an uninterrupted one.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ADAPTER_WEIGHTS_FILE, readAdapterConfig } from '../../src/core/io/adapter-files.js';
import { readSafetensors } from '../../src/core/io/safetensors.js';
import { OPTIMIZER_FILE, checkpointDir, readTrainerState } from '../../src/app/train/checkpoint.js';

export const bin = fileURLToPath(new URL('../../bin/run.js', import.meta.url));

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `peft args` to the end (30 min at most). */
export function peftSync(args: string[], env: Record<string, string> = {}): CliResult {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 1_800_000 });
  return { code: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** Starts `peft args`: the child, and a promise of its end. */
export function peftSpawn(args: string[], env: Record<string, string> = {}): { child: ChildProcessWithoutNullStreams; done: Promise<CliResult> } {
  const child = spawn(process.execPath, [bin, ...args], { env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const done = new Promise<CliResult>((res) => child.on('close', (code, signal) => res({ code, signal, stdout, stderr })));
  return { child, done };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** log.jsonl's step and validation records without times: what a resumed run must reproduce. */
export function logRecords(runDir: string): string[] {
  const path = join(runDir, 'log.jsonl');
  if (!existsSync(path)) return [];
  const out: string[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    let r: { type?: string; step?: number; epoch?: number; loss?: number; dice?: unknown; iou?: unknown };
    try {
      r = JSON.parse(line);
    } catch {
      continue; // a torn last line: the resume truncates it away
    }
    if (r.type === 'step') out.push(`step ${r.step} epoch ${r.epoch} loss ${r.loss}`);
    else if (r.type === 'val') out.push(`val ${r.step} epoch ${r.epoch} dice ${JSON.stringify(r.dice)} iou ${JSON.stringify(r.iou)}`);
  }
  return out;
}

/** Steps in log.jsonl now (cheap enough to poll). */
export function loggedSteps(runDir: string): number {
  const path = join(runDir, 'log.jsonl');
  if (!existsSync(path)) return 0;
  return (readFileSync(path, 'utf8').match(/"type":"step"/g) ?? []).length;
}

/** The `Dice …` and `mIoU …` lines `peft train` ends with. */
export const metricLines = (stdout: string): string[] => stdout.split('\n').filter((l) => /^(Dice|mIoU) /.test(l));

/**
 * The step of `<run>/checkpoints/last` (or of its `.old`, after a kill between
 * the renames), after reading it in full: trainer state, adapter config and
 * both safetensors files through their validating readers. Undefined when
 * there is no checkpoint yet; throws (the reader's PeftError) when one is
 * there but broken.
 */
export function checkpointStep(runDir: string): number | undefined {
  const found = checkpointDir(join(runDir, 'checkpoints/last'));
  if (!found) return undefined;
  const state = readTrainerState(found);
  readAdapterConfig(found);
  readSafetensors(join(found, ADAPTER_WEIGHTS_FILE));
  readSafetensors(join(found, OPTIMIZER_FILE));
  return state.step;
}

/**
 * Budgets of the long reliability tests: `npm test` runs them small,
 * `npm run reliability` sets these variables to run them large.
 */
export function budget(name: string, fallback: number): number {
  const n = Number(process.env[name]);
  return Number.isInteger(n) && n > 0 ? n : fallback;
}

/** Writes a test's figures to $PEFT_RELIABILITY_OUT/<name>.json, for docs/reliability.md (`npm run reliability`). */
export function writeFigures(name: string, figures: object): void {
  const dir = process.env.PEFT_RELIABILITY_OUT;
  if (dir) writeFileSync(join(dir, `${name}.json`), `${JSON.stringify(figures, null, 2)}\n`);
}

export function fmtSeconds(s: number): string {
  return s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}
