// Helpers of the reliability scripts (run.mjs, memory.mjs): the repository
// root, the built library (dist/) and the `peft` binary. The pass/fail checks
// that run the CLI (SIGKILL loop, full disk) are tests now, with their helpers
// in test/support/cli-runs.ts.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
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

export function fmtSeconds(s) {
  return s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}
