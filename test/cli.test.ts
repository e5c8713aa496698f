// The `peft` CLI run as a user runs it: a subprocess of bin/run.js (built by `npm ci`).
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const bin = fileURLToPath(new URL('../bin/run.js', import.meta.url));

const cache = mkdtempSync(join(tmpdir(), 'peft-cli-'));

export function peft(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, PEFT_BACKEND: 'cpu', PEFT_CACHE: cache }, timeout: 300_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('peft CLI', () => {
  it('list shows backbones and methods tables', () => {
    const r = peft('list');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Backbones/m);
    expect(r.stdout).toMatch(/^Methods/m);
  });

  it('env names the backend and why faster ones were skipped', () => {
    const r = peft('env', '--backend', 'cpu');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^backend: cpu$/m);
    expect(r.stdout).toMatch(/@tensorflow\/tfjs 4\.22/);
    const auto = spawnSync(process.execPath, [bin, 'env'], { encoding: 'utf8', env: { ...process.env, PEFT_BACKEND: '' } });
    expect(auto.stdout).toMatch(/skip tensorflow-gpu: /);
  });

  it('user errors exit 2 with one line and no stack trace', () => {
    for (const args of [['info', 'nosuch'], ['list', 'gadgets'], ['list', '--bogus'], ['env', '--backend', 'tpu'], ['parity', '/nonexistent/dir']]) {
      const r = peft(...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.stderr).toMatch(/^peft: error: /);
      expect(r.stderr).not.toMatch(/\bat .*\.js:\d+/);
    }
    expect(peft('env', '--backend', 'tpu').stderr).toContain("unknown backend 'tpu'");
  });

  it('list and info show the built-in plugins', () => {
    const r = peft('list');
    for (const id of ['sam', 'mobile_sam', 'efficient_sam', 'lora', 'adapter', 'adalora']) expect(r.stdout).toMatch(new RegExp(`^${id}\\s`, 'm'));
    const info = peft('info', 'sam_lora');
    expect(info.code).toBe(0);
    expect(info.stdout).toMatch(/^lora \(method\)/);
    expect(info.stdout).toMatch(/^r\s+integer\s+4/m);
    const bad = peft('info', 'lroa');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("did you mean 'lora'?");
  });

  it('plan prints the adapted sites and parameter counts', () => {
    const r = peft('plan', '--backbone', 'sam', '--preset', 'tiny', '--method', 'lora', '--rank', '2', '--json');
    expect(r.code, r.stderr).toBe(0);
    const plan = JSON.parse(r.stdout);
    expect(plan.methodParameters).toBe(plan.sites.reduce((n: number, s: { parameters: number }) => n + s.parameters, 0));
    expect(plan.methodConfig.r).toBe(2);
    expect(peft('plan', '--method', 'adapter', '--rank', '4').stderr).toMatch(/--rank does not apply to method 'adapter'/);
    const huge = peft('plan', '--backbone', 'sam', '--preset', 'tiny', '--method', 'lora', '--rank', '100000');
    expect(huge.code).toBe(2);
    expect(huge.stderr.trim().split('\n')).toHaveLength(1);
    expect(huge.stderr).toMatch(/r=100000 is larger than min\(in, out\)/);
  });

  it('verify runs the laws of a method', () => {
    const r = peft('verify', 'lora', '--runs', '2', '--seed', '3');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/merge then unmerge restores every weight/);
    expect(r.stdout).toMatch(/^\d+ passed, 0 failed/m);
  });

  it('bad training flags exit 2 with one line', () => {
    const cases: [string[], RegExp][] = [
      [['train', '--rank', '0'], /invalid config 'r'/],
      [['train', '--batch', '0'], /--batch must be an integer from 1 to 1024, got 0/],
      [['train', '--method', 'adalora', '--rank', '4', '--target-rank', '8'], /target_r/],
      [['train', '--data-path', '/nonexistent/refuge', '--steps', '1'], /nonexistent/],
      [['train', '--backbone', 'unet'], /unknown backbone 'unet'/],
      [['train', '--preset', 'vit_z'], /unknown preset/],
      [['train', '--image-size', '100', '--backbone', 'sam', '--preset', 'tiny'], /img_size|multiple/],
      [['train', '--lr', 'fast'], /--lr must be a positive number/],
    ];
    for (const [args, pattern] of cases) {
      const r = peft(...args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.stderr, args.join(' ')).toMatch(pattern);
    }
  });

  it("trains with Medical-SAM-Adapter's single-dash flags, then evaluates the run", () => {
    const out = mkdtempSync(join(tmpdir(), 'peft-runs-'));
    const r = peft('train', '-net', 'sam', '-encoder', 'tiny', '-mod', 'sam_lora', '-image_size', '64', '--steps', '2', '-exp_name', 'x', '--out', out);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Dice\s+cup \d\.\d{4}\s+disc \d\.\d{4}/m);
    expect(r.stdout).toMatch(/^memory: peak RSS \d+ MB/m);
    expect(r.stdout).toContain(`saved: ${join(out, 'x')}`);
    expect(existsSync(join(out, 'x', 'checkpoints', 'best', 'adapter_model.safetensors'))).toBe(true);
    expect(JSON.parse(readFileSync(join(out, 'x', 'run.json'), 'utf8')).method.id).toBe('lora');
    const e = peft('eval', '--run', join(out, 'x'));
    expect(e.code, e.stderr).toBe(0);
    expect(e.stdout).toMatch(/^disc\s+\d\.\d{4}/m);
    const again = peft('train', '-net', 'sam', '-encoder', 'tiny', '--steps', '1', '-exp_name', 'x', '--out', out);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/already exists and is not empty/);
  });
});
