// Writing and deleting outside the intended folder (issue 19, class 1): a
// symbolic link planted where peftjs writes must never carry the write, the
// truncation or the deletion outside. The attacks that worked: a run folder
// whose log.jsonl links to an outside file (`--resume` truncated it and
// appended to it); a previous report whose .peft-report.json lists a path
// through a linked folder (`peft report --out` deleted the outside file); a
// linked index.html or runs/ in a previous report (written through). Plus the
// checkpoint folder of a run linked elsewhere. Every outside file must keep
// its bytes; each refusal is one line naming the link.
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeReport } from '../../src/app/report/index.js';
import { REPORT_MARKER } from '../../src/app/report/output-dir.js';
import { ensureDefaultDataset, synthesize } from '../../src/app/data/synth-output.js';
import { saveTrainingCheckpoint } from '../../src/app/train/checkpoint.js';
import { Adam } from '../../src/app/train/adam.js';
import { RunLog } from '../../src/app/train/run-log.js';
import { prepareOutput } from '../../src/app/predict/predict-images.js';
import { compose } from '../../src/core/peft/compose.js';
import { Registry } from '../../src/core/registry/registry.js';
import { ToyBackbone } from '../../src/core/testing/toy-backbone.js';
import { register as registerLora } from '../../plugins/method-lora/index.js';
import { peftSync } from '../support/cli-runs.js';

const work = mkdtempSync(join(tmpdir(), 'peft-symlink-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** An outside folder with a file that must keep its bytes. */
function outside(name: string): { dir: string; victim: string; check: () => void } {
  const dir = join(work, `outside-${name}`);
  mkdirSync(dir);
  const victim = join(dir, 'victim.txt');
  writeFileSync(victim, 'precious\n');
  return { dir, victim, check: () => expect(readFileSync(victim, 'utf8')).toBe('precious\n') };
}

/** A small finished run folder, as the report reads it. */
function fakeRun(name: string): string {
  const dir = join(work, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'run.json'), JSON.stringify({ version: 1, createdAt: '2026-01-01T00:00:00.000Z', backbone: { id: 'sam', preset: 'tiny' }, method: { id: 'lora' } }));
  const lines = [1, 2, 3].map((s) => JSON.stringify({ type: 'step', step: s, epoch: 0, loss: 1 / s, lr: 1e-3, ms: 40, time: `2026-01-01T00:00:0${s}.000Z` }));
  writeFileSync(join(dir, 'log.jsonl'), `${lines.join('\n')}\n`);
  return dir;
}

describe('peft report never writes or deletes through a link', () => {
  it('a previous report whose marker lists paths through a linked folder, outside, or at a linked file: nothing outside is deleted; a linked index.html is replaced, not written through', async () => {
    const run = fakeRun('run-a');
    const o = outside('a');
    const out = join(work, 'report-a');
    await writeReport([run], { out });
    // the attacker edits the previous report
    symlinkSync(o.dir, join(out, 'old'));
    unlinkSync(join(out, 'index.html'));
    symlinkSync(o.victim, join(out, 'index.html'));
    symlinkSync(o.victim, join(out, 'stale-link'));
    const marker = JSON.parse(readFileSync(join(out, REPORT_MARKER), 'utf8')) as { files: string[] };
    marker.files.push('old/victim.txt', '../outside-a/victim.txt', `${o.victim}`, 'stale-link');
    writeFileSync(join(out, REPORT_MARKER), JSON.stringify(marker));

    await writeReport([run], { out });
    o.check();
    expect(lstatSync(join(out, 'index.html')).isFile()).toBe(true);
    expect(readFileSync(join(out, 'index.html'), 'utf8')).toContain('<html');
    // a stale link of the report's own is removed (the link, not its target)
    expect(readdirSync(out)).not.toContain('stale-link');
    expect(readdirSync(o.dir)).toEqual(['victim.txt']);
  }, 60_000);

  it('a linked runs/ folder in a previous report: refused in one line naming it, before anything moves; the outside folder is untouched', async () => {
    const run = fakeRun('run-b');
    const o = outside('b');
    const out = join(work, 'report-b');
    await writeReport([run], { out });
    const before = readFileSync(join(out, 'index.html'), 'utf8');
    rmSync(join(out, 'runs'), { recursive: true });
    symlinkSync(o.dir, join(out, 'runs'));
    await expect(writeReport([run], { out, now: new Date('2027-01-01') })).rejects.toThrow(`${join(out, 'runs')}: is a symbolic link; peftjs never writes or deletes through a link it did not make`);
    expect(readdirSync(o.dir)).toEqual(['victim.txt']);
    o.check();
    expect(readFileSync(join(out, 'index.html'), 'utf8')).toBe(before);
    expect(readdirSync(out).some((f) => f.startsWith('.peft-report-tmp-'))).toBe(false);
  }, 60_000);
});

describe('training checkpoints never go through a linked folder', () => {
  it('<run>/checkpoints linked elsewhere: the save is refused naming the link, nothing is written or removed there', async () => {
    const registry = new Registry();
    registerLora(registry);
    const toy = new ToyBackbone({ depth: 2, dim: 6, hidden: 8, seed: 4 });
    const peft = compose(toy, registry.createMethod('lora', { r: 2, alpha: 4, targets: ['attn.qkv[q,v]'] }), { trainDecoder: false });
    const adam = new Adam({ lr: 0.1 });
    const o = outside('ckpt');
    // what a killed save would have left there, named as ours: must not be removed through the link
    mkdirSync(join(o.dir, 'last.tmp-1'));
    const run = join(work, 'run-ckpt');
    mkdirSync(run);
    symlinkSync(o.dir, join(run, 'checkpoints'));
    try {
      await expect(saveTrainingCheckpoint(join(run, 'checkpoints', 'last'), peft, adam, { step: 1, epoch: 0, bestDice: null, bestStep: null })).rejects.toThrow(
        `${join(run, 'checkpoints')}: is a symbolic link`,
      );
    } finally {
      peft.dispose();
    }
    expect(readdirSync(o.dir).sort()).toEqual(['last.tmp-1', 'victim.txt']);
    o.check();
  });
});

describe('peft train --resume never writes through a linked log.jsonl', () => {
  it('RunLog (every writer of the log) refuses a linked log.jsonl when appending and truncating, whoever calls it', () => {
    const o = outside('runlog');
    const run = join(work, 'run-log-link');
    mkdirSync(run);
    const path = join(run, 'log.jsonl');
    symlinkSync(o.victim, path);
    const log = new RunLog(path);
    expect(() => log.write({ type: 'info', step: 0, message: 'x' })).toThrow(`${path}: is a symbolic link`);
    expect(() => log.truncate(0, 0)).toThrow(`${path}: is a symbolic link`);
    expect(() => log.truncate(undefined, 0)).toThrow(`${path}: is a symbolic link`);
    o.check();
  });

  it('refused in one line naming the log; the outside file keeps its bytes (was: truncated, then appended to)', async () => {
    const env = { PEFT_CACHE: join(work, 'cache'), PEFT_PLUGINS: '' };
    const data = await ensureDefaultDataset(join(work, 'cache'), { n: 6, size: 64, seed: 1 });
    const runs = join(work, 'runs');
    const args = ['--backbone', 'sam', '--preset', 'tiny', '--image-size', '64', '--data-path', data, '--batch', '2', '--steps', '4', '--seed', '3', '--backend', 'wasm', '--out', runs, '--exp-name', 'linked'];
    const first = peftSync(['train', ...args], env);
    expect(first.code, first.stderr).toBe(0);
    const o = outside('log');
    const log = join(runs, 'linked', 'log.jsonl');
    unlinkSync(log);
    symlinkSync(o.victim, log);
    const r = peftSync(['train', '--resume', '--out', runs, '--exp-name', 'linked', '--backend', 'wasm'], env);
    expect(r.code, r.stderr).toBe(2);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('peft: error:'));
    expect(errors).toHaveLength(1);
    // resume's own check of the run folder (resume-request.ts) finds it first now; RunLog's O_NOFOLLOW stays underneath
    expect(errors[0]!.startsWith(`peft: error: ${log}: `)).toBe(true);
    expect(errors[0]).toMatch(/symbolic link/);
    o.check();
  }, 180_000);
});

describe('peft data synth never writes through a link in its output', () => {
  it('a previous synth output whose Training-400/ links elsewhere, with --force: refused naming the link before anything moves; the outside folder is untouched', async () => {
    const o = outside('synth');
    const out = join(work, 'synth-out');
    await synthesize(out, { n: 4, size: 32, seed: 1 });
    rmSync(join(out, 'Training-400'), { recursive: true });
    symlinkSync(o.dir, join(out, 'Training-400'));
    const before = readdirSync(out).sort();
    await expect(synthesize(out, { n: 4, size: 32, seed: 1 }, true)).rejects.toThrow(`${join(out, 'Training-400')}: is a symbolic link`);
    expect(readdirSync(o.dir)).toEqual(['victim.txt']);
    o.check();
    expect(readdirSync(out).sort()).toEqual(before);
  });
});

describe("peft predict's output folder", () => {
  it('a predictions.json that is a FIFO is refused at once (was: the read blocked forever)', () => {
    const out = join(work, 'predict-fifo');
    mkdirSync(out);
    execFileSync('mkfifo', [join(out, 'predictions.json')]);
    const t0 = performance.now();
    expect(() => prepareOutput(out, false)).toThrow(`${join(out, 'predictions.json')} was not written by peft predict: choose another --out`);
    expect(performance.now() - t0).toBeLessThan(2_000);
  });
});
