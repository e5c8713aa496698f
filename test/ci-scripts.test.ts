// scripts/ci/apt.sh, which the install scripts (OpenBLAS, chromium) run
// apt-get through: a busy apt makes it wait and retry instead of failing, any
// other failure fails at once with apt's own message. apt-get is a stand-in on
// PATH here (no root, no network); the real lock wait was checked by hand
// (see the file's header).
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const aptSh = fileURLToPath(new URL('../scripts/ci/apt.sh', import.meta.url));

/** Runs `apt_get ARGS` against a stand-in apt-get that fails `locked` times with apt's lock message, then prints `then`. */
function run(args: string, opts: { locked: number; then?: 'ok' | 'missing'; wait: number }) {
  const dir = mkdtempSync(join(tmpdir(), 'peft-apt-'));
  const calls = join(dir, 'calls');
  writeFileSync(calls, '');
  writeFileSync(
    join(dir, 'apt-get'),
    `#!/usr/bin/env bash
echo "$*" >> ${JSON.stringify(calls)}
n=$(wc -l < ${JSON.stringify(calls)})
if [ "$n" -le ${opts.locked} ]; then
  echo "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 42 (apt-get)" >&2
  echo "E: Unable to lock directory /var/lib/apt/lists/" >&2
  exit 100
fi
${opts.then === 'missing' ? 'echo "E: Unable to locate package libnosuch" >&2; exit 100' : 'echo done'}
`,
  );
  chmodSync(join(dir, 'apt-get'), 0o755);
  const r = spawnSync('bash', ['-c', `set -euo pipefail; . ${JSON.stringify(aptSh)}; SUDO=; apt_get ${args}`], {
    encoding: 'utf8',
    env: { ...process.env, PATH: `${dir}:${process.env.PATH}`, APT_LOCK_WAIT: String(opts.wait) },
    timeout: 60_000,
  });
  return { code: r.status, stderr: r.stderr, calls: readFileSync(calls, 'utf8').trim().split('\n').filter(Boolean) };
}

describe('scripts/ci/apt.sh', () => {
  it('waits while another apt holds the lock, says so once, then succeeds quietly', () => {
    const r = run('update -qq', { locked: 2, wait: 30 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.calls).toEqual(Array(3).fill('-o DPkg::Lock::Timeout=30 update -qq'));
    expect(r.stderr.trim().split('\n')).toEqual(['bash: apt is busy (another apt or dpkg holds its lock): waiting up to 30s']);
  });

  it("gives up at APT_LOCK_WAIT with apt's message", () => {
    const r = run('install -y libopenblas-dev', { locked: 1000, wait: 1 });
    expect(r.code).toBe(100);
    expect(r.stderr).toMatch(/Could not get lock \/var\/lib\/apt\/lists\/lock/);
    expect(r.calls.length).toBeGreaterThanOrEqual(1);
  });

  it('any other failure fails at once', () => {
    const r = run('install -y libnosuch', { locked: 0, then: 'missing', wait: 30 });
    expect(r.code).toBe(100);
    expect(r.calls).toHaveLength(1);
    expect(r.stderr).toMatch(/Unable to locate package libnosuch/);
    expect(r.stderr).not.toMatch(/waiting/);
  });
});
