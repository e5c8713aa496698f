// The `peft` CLI run as a user runs it: a subprocess of bin/run.js (built by `npm ci`).
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const bin = fileURLToPath(new URL('../bin/run.js', import.meta.url));

export function peft(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, PEFT_BACKEND: 'cpu' }, timeout: 120_000 });
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
});
