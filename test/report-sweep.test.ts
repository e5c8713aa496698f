// `peft report SWEEPDIR` as a subprocess (the built CLI): the table over
// seeds and the paired comparison on standard output, the page written, the
// Predictions section asked for one run per group, and one-line refusals of a
// sweep mixed with run folders or of two sweeps; then the report of a real
// (tiny) `peft sweep`, so the two stay agreed on the folder.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeFakeSweep } from './support/fake-sweep.js';

const bin = fileURLToPath(new URL('../bin/run.js', import.meta.url));
const peft = (...args: string[]) => {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};

let root: string;
let sweep: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'peft-report-sweep-cli-'));
  sweep = join(root, 'sweep');
  makeFakeSweep(sweep, {
    name: 'cli',
    groups: [
      { backbone: 'mobile_sam', method: 'lora', seeds: [{ seed: 0, dice: { disc: 0.9, cup: 0.7 } }, { seed: 1, dice: { disc: 0.92, cup: 0.72 } }] },
      { backbone: 'mobile_sam', method: 'adapter', seeds: [{ seed: 0, dice: { disc: 0.8, cup: 0.6 } }, { seed: 1 }] },
    ],
  });
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('peft report SWEEPDIR', () => {
  it('prints the table over seeds and the comparison, and writes the page', () => {
    const out = join(root, 'out');
    const r = peft('report', sweep, '--out', out, '--samples', '0');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    // the built-in plugins name the backbone and the methods
    expect(r.stdout).toMatch(/MobileSAM .*LoRA .*0\.8100 ± 0\.0141 .*n = 2 seeds/);
    expect(r.stdout).toMatch(/MobileSAM .*Adapter .*0\.7000 .*1 of 2 seeds/);
    expect(r.stdout).toContain('MobileSAM: LoRA beats Adapter in 1 of 1 seed, Δ Dice +0.1000.');
    expect(r.stdout).toContain('MobileSAM: overall LoRA (wins 1 of 1 pairing).');
    expect(r.stdout).toContain(`wrote ${join(out, 'index.html')}`);
    for (const f of ['index.html', 'results.md', 'results.json', 'loss.png', 'dice.svg']) expect(existsSync(join(out, f)), f).toBe(true);
    expect(readFileSync(join(out, 'index.html'), 'utf8')).toContain('title="seed 0: 0.8000\nseed 1: 0.8200">0.8100 ± 0.0141</td>');
  });

  it('asks the Predictions section for one run per group (here: no checkpoints, one line each)', () => {
    const out = join(root, 'out-pictures');
    const r = peft('report', sweep, '--out', out, '--samples', '1');
    expect(r.code).toBe(0);
    const warnings = r.stderr.split('\n').filter((l) => l.includes('no pictures of'));
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toContain(join('runs', 'mobile_sam-lora-s0'));
    expect(warnings[1]).toContain(join('runs', 'mobile_sam-adapter-s0'));
    expect(readFileSync(join(out, 'index.html'), 'utf8')).toContain('MobileSAM LoRA (seed 0)');
  });

  it('refuses a sweep given with run folders, and two sweeps, in one line', () => {
    const mixed = peft('report', sweep, join(sweep, 'runs', 'mobile_sam-lora-s0'), '--out', join(root, 'x'));
    expect(mixed.code).toBe(2);
    expect(mixed.stderr.trim()).toMatch(/^peft: error: '.*sweep' is a sweep folder: give it alone, or only training run directories/);
    expect(mixed.stderr.trim().split('\n')).toHaveLength(1);
    const two = peft('report', sweep, sweep, '--out', join(root, 'y'));
    expect(two.code).toBe(2);
    expect(two.stderr.trim()).toMatch(/^peft: error: give one sweep folder at a time \(got 2/);
  });

  it('reports a real peft sweep (two tiny jobs), its predictions drawn', () => {
    const real = join(root, 'real');
    // every value after -- differs from the others and from the flags': today `peft sweep` loses a repeated one ('2' is not a --flag)
    const sw = peft('sweep', '--backbones', 'sam', '--methods', 'lora,adapter', '--out', real, '--', '--preset', 'tiny', '--image-size', '64', '--steps', '4', '--val-every', '2', '--batch', '1');
    expect(sw.code, sw.stderr).toBe(0);
    const out = join(root, 'real-report');
    const r = peft('report', real, '--out', out, '--samples', '1');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/SAM .*LoRA .*0\.\d{4} .*n = 1 seed/);
    expect(r.stdout).toMatch(/SAM .*Adapter .*0\.\d{4} .*n = 1 seed/);
    expect(r.stdout).toMatch(/^SAM: (LoRA beats Adapter|Adapter beats LoRA|LoRA and Adapter draw)/m);
    expect(r.stdout).toContain('predictions: 2 of 2 groups re-evaluated (one seed each)');
    const json = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { sweep: { jobs: number; finished: number }; groups: { dice: { n: number } }[] };
    expect(json.sweep).toMatchObject({ jobs: 2, finished: 2 });
    expect(json.groups.map((g) => g.dice.n)).toEqual([1, 1]);
    const html = readFileSync(join(out, 'index.html'), 'utf8');
    expect(html).toContain('SAM LoRA (seed 0)');
    expect(html).toMatch(/<img src="pictures\/[^"]+\.png"/);
  }, 240_000);
});
