// Helpers shared by the reliability scripts: the `peft` binary as a child
// process, run-directory inspection through the built library (dist/), and
// the log comparison a resumed run must pass.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const bin = join(root, 'bin/run.js');

/** A module of the built library (`npm run build` writes dist/). */
export async function lib(path) {
  const file = join(root, 'dist/src', path);
  if (!existsSync(file)) throw new Error(`${file} is missing: run npm run build`);
  return import(pathToFileURL(file).href);
}

export function peftSync(args, env = {}) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 1_800_000 });
  return { code: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** Starts `peft args`; returns the child and a promise of its end. */
export function peftSpawn(args, env = {}) {
  const child = spawn(process.execPath, [bin, ...args], { env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const done = new Promise((res) => child.on('close', (code, signal) => res({ code, signal, stdout, stderr })));
  return { child, done, out: () => ({ stdout, stderr }) };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** log.jsonl's step and validation records, without times (what a resumed run must reproduce). */
export function logRecords(runDir) {
  const path = join(runDir, 'log.jsonl');
  if (!existsSync(path)) return [];
  const out = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    let r;
    try {
      r = JSON.parse(line);
    } catch {
      continue;
    }
    if (r.type === 'step') out.push(`step ${r.step} epoch ${r.epoch} loss ${r.loss}`);
    else if (r.type === 'val') out.push(`val ${r.step} epoch ${r.epoch} dice ${JSON.stringify(r.dice)} iou ${JSON.stringify(r.iou)}`);
  }
  return out;
}

/** Steps in log.jsonl now (cheap enough to poll). */
export function loggedSteps(runDir) {
  const path = join(runDir, 'log.jsonl');
  if (!existsSync(path)) return 0;
  return (readFileSync(path, 'utf8').match(/"type":"step"/g) ?? []).length;
}

export const metricLines = (stdout) => stdout.split('\n').filter((l) => /^(Dice|mIoU) /.test(l));

/**
 * Whether `<run>/checkpoints/last` (or its `.old`) is a complete, parseable
 * checkpoint: trainer state, adapter config and both safetensors files parse
 * (the full validation of each reader). Returns its step, or undefined when
 * there is none; throws when one is there but broken.
 */
export async function checkpointStep(runDir) {
  const { checkpointDir, readTrainerState } = await lib('app/train/checkpoint.js');
  const { readAdapterConfig, ADAPTER_WEIGHTS_FILE } = await lib('core/io/adapter-files.js');
  const { readSafetensors } = await lib('core/io/safetensors.js');
  const found = checkpointDir(join(runDir, 'checkpoints/last'));
  if (!found) return undefined;
  const state = readTrainerState(found);
  readAdapterConfig(found);
  readSafetensors(join(found, ADAPTER_WEIGHTS_FILE));
  readSafetensors(join(found, 'optimizer.safetensors'));
  return state.step;
}

export function fmtSeconds(s) {
  return s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}
