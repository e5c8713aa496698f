// Only regular files are read (issue 19, class 3). A checkpoint, an adapter
// file, run.json, trainer_state.json, plugins.json, a plugin's package.json or
// entry that is /dev/zero (directly or through a symlink) was read without
// end (8.5 GB in 36 s), and a FIFO blocked the command forever, deaf to
// SIGINT. Through the CLI, as a user meets them: every such path ends in one
// line naming it and saying what it is (exit 2; a plugin: a warning, and the
// command goes on), at once.
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureDefaultDataset } from '../../src/app/data/synth-output.js';
import { serializeSafetensors } from '../../src/core/io/safetensors.js';
import { recordTable } from '../support/fuzz-harness.js';
import { inPool, peftTimed, type TimedRun } from '../support/cli-timed.js';

const tmp = mkdtempSync(join(tmpdir(), 'peft-unbounded-'));
const data = await ensureDefaultDataset(join(tmp, 'cache'), { n: 4, size: 64, seed: 1 });
const out = join(tmp, 'runs');
const fifo = join(tmp, 'fifo');
execFileSync('mkfifo', [fifo]);
const zero = join(tmp, 'zero-link');
symlinkSync('/dev/zero', zero);
const folder = join(tmp, 'a-folder');
mkdirSync(folder);

/** What each kind of non-file is called in the message. */
const KIND: Record<string, RegExp> = {
  '/dev/zero': /: a character device, not a regular file/,
  [zero]: /\(a symlink to \/dev\/zero\): a character device, not a regular file/,
  [fifo]: /: a named pipe \(FIFO\), not a regular file/,
  [folder]: /: a folder, not a regular file/,
};

/** A folder holding `name` as a symlink to `target` (and `extra` regular files). */
function holding(dirName: string, name: string, target: string, extra: Record<string, string | Uint8Array> = {}): string {
  const dir = join(tmp, dirName);
  mkdirSync(dir, { recursive: true });
  for (const [f, body] of Object.entries(extra)) writeFileSync(join(dir, f), body);
  symlinkSync(target, join(dir, name));
  return dir;
}

const train = (...a: string[]) => ['train', '--data-path', data, '--backbone', 'sam', '--preset', 'tiny', '--image-size', '64', ...(a.includes('--steps') ? [] : ['--steps', '1']), '--out', out, ...a];
const hfConfig = JSON.stringify({ peft_type: 'LORA', r: 4, lora_alpha: 4, target_modules: ['qkv'] });
const weights = serializeSafetensors(new Map([['base_model.model.x.lora_A.weight', { dtype: 'F32' as const, shape: [1], data: new Float32Array(1) }]]));

interface Case {
  what: string;
  args: string[];
  env?: Record<string, string>;
  /** The path the message must name, and which kind of non-file it is. */
  path: string;
  kind: string;
  /** A plugin: exit 0 with one warning; else exit 2 with one error. */
  warning?: boolean;
}

function cases(): Case[] {
  const list: Case[] = [];
  for (const target of ['/dev/zero', zero, fifo, folder]) list.push({ what: `--checkpoint ${target}`, args: train('--checkpoint', target), path: target, kind: target });
  for (const target of [zero, fifo]) {
    const tag = target === fifo ? 'fifo' : 'zero';
    const run = holding(`run-${tag}`, 'run.json', target);
    list.push({ what: `run.json -> ${tag} (eval)`, args: ['eval', '--run', run], path: join(run, 'run.json'), kind: target });
    const cfg = holding(`adapter-cfg-${tag}`, 'adapter_config.json', target, { 'adapter_model.safetensors': weights });
    list.push({ what: `adapter_config.json -> ${tag} (train --adapter)`, args: train('--adapter', cfg), path: join(cfg, 'adapter_config.json'), kind: target });
    const w = holding(`adapter-weights-${tag}`, 'adapter_model.safetensors', target, { 'adapter_config.json': hfConfig });
    list.push({ what: `adapter_model.safetensors -> ${tag} (train --adapter)`, args: train('--adapter', w), path: join(w, 'adapter_model.safetensors'), kind: target });
    const cfgDir = holding(`config-${tag}`, 'plugins.json', target);
    list.push({ what: `plugins.json -> ${tag}`, args: ['list'], env: { PEFT_CONFIG_DIR: cfgDir }, path: join(cfgDir, 'plugins.json'), kind: target, warning: true });
    const pkg = holding(`plugin-pkg-${tag}`, 'package.json', target, { 'index.js': 'export function register() {}' });
    list.push({ what: `a plugin's package.json -> ${tag}`, args: ['list', '--plugin', pkg], path: join(pkg, 'package.json'), kind: target, warning: true });
  }
  list.push({ what: 'PEFT_PLUGINS=/dev/zero', args: ['list'], env: { PEFT_PLUGINS: '/dev/zero' }, path: '/dev/zero', kind: '/dev/zero', warning: true });
  list.push({ what: 'PEFT_PLUGINS=<fifo>', args: ['list'], env: { PEFT_PLUGINS: fifo }, path: fifo, kind: fifo, warning: true });
  list.push({ what: '--plugin <symlink to /dev/zero>', args: ['list', '--plugin', zero], path: zero, kind: zero, warning: true });
  const entry = holding('plugin-entry', 'index.js', fifo, { 'package.json': JSON.stringify({ name: 'fifo-entry', type: 'module', main: 'index.js' }) });
  list.push({ what: "a plugin's entry module -> fifo", args: ['list', '--plugin', entry], path: join(entry, 'index.js'), kind: fifo, warning: true });
  return list;
}

function check(c: Case, r: TimedRun): string | undefined {
  const lines = r.stderr.trim().split('\n').filter(Boolean);
  const prefix = c.warning ? 'peft: warning: ' : 'peft: error: ';
  const mine = lines.filter((l) => l.startsWith(prefix));
  if (r.timedOut) return `${c.what}: still running after ${Math.round(r.ms / 1000)} s (killed)`;
  if (r.code !== (c.warning ? 0 : 2)) return `${c.what}: exit ${r.code}: ${r.stderr.slice(0, 400)}`;
  if (mine.length !== 1) return `${c.what}: expected one '${prefix}' line, got ${JSON.stringify(lines.slice(0, 4))}`;
  if (!mine[0]!.includes(c.path) || !KIND[c.kind]!.test(mine[0]!)) return `${c.what}: the line does not name ${c.path} and what it is: ${mine[0]}`;
  if (/\n\s+at /.test(r.stderr)) return `${c.what}: a stack trace`;
  return undefined;
}

describe('only regular files are read', () => {
  it('devices, symlinks to them, FIFOs and folders given as files: one line naming the path, at once', async () => {
    const t0 = performance.now();
    const list = cases();
    const runs = await inPool(list, 2, (c) => peftTimed(c.args, { env: { PEFT_CONFIG_DIR: join(tmp, 'config'), ...c.env }, timeoutMs: 30_000 }));
    const problems = list.map((c, i) => check(c, runs[i]!)).filter((p): p is string => p !== undefined);
    recordTable('unbounded reads', 'devices, FIFOs, folders and symlinks to them as input files: one line, at once (CLI)', problems.length ? ['failed'] : list.map(() => 'rejected'), (performance.now() - t0) / 1000);
    expect(problems, problems.join('\n')).toEqual([]);
    expect(Math.max(...runs.map((r) => r.ms))).toBeLessThan(20_000);
  }, 300_000);

  it('a resume whose trainer_state.json became a FIFO: one line, at once', async () => {
    const first = await peftTimed(train('--exp-name', 'resumed'), { timeoutMs: 120_000 });
    expect(first.code, first.stderr).toBe(0);
    const state = join(out, 'resumed', 'checkpoints', 'last', 'trainer_state.json');
    rmSync(state);
    execFileSync('mkfifo', [state]);
    // the copy in best/ would be used if last/ were not complete: make it a FIFO too
    const best = join(out, 'resumed', 'checkpoints', 'best', 'trainer_state.json');
    rmSync(best, { force: true });
    execFileSync('mkfifo', [best]);
    const r = await peftTimed(train('--exp-name', 'resumed', '--resume', '--steps', '2'), { timeoutMs: 30_000 });
    expect(r.timedOut, 'resume still running after 30 s').toBe(false);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/trainer_state\.json: a named pipe \(FIFO\), not a regular file/);
  }, 300_000);
});
