// The addon's crash report (native/src/crash.cc): a process that loaded the
// addon and dies of SIGABRT (how glibc ends a process whose heap it found
// corrupt) prints its native stack to stderr first, and still dies of SIGABRT.
// Skipped with the reason when the addon is not built.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { built, whyNotBuilt } from '../../../test/support/native.js';

if (!built) console.log(`native crash report test skipped: ${whyNotBuilt}`);
const nativeIndex = createRequire(import.meta.url).resolve('@peftjs/native');
// the children die on purpose: without a core dump (ulimit -c 0), and in the temp folder all the same
const options = { encoding: 'utf8' as const, timeout: 20_000, cwd: tmpdir() };
/** Runs `node -e script` with core dumps off. */
function dyingNode(script: string) {
  return spawnSync('/bin/sh', ['-c', 'ulimit -c 0 && exec "$0" -e "$1"', process.execPath, script], options);
}

describe('native crash report', () => {
  it.skipIf(!built)('prints the native stack of a SIGABRT, then dies of it as before', () => {
    const script = `require(${JSON.stringify(nativeIndex)}).load(); process.kill(process.pid, 'SIGABRT'); setTimeout(() => {}, 5000);`;
    const r = dyingNode(script);
    expect(r.signal).toBe('SIGABRT');
    expect(r.stderr).toContain('peftjs native: SIGABRT; the native stack of the thread that raised it');
    // the frames: the handler's own, then the C library's kill
    expect(r.stderr).toMatch(/peftjs_native\.node/);
    expect(r.stderr).toMatch(/libc\.so/);
  });

  it('a process that did not load the addon dies of SIGABRT without the report', () => {
    const r = dyingNode(`process.kill(process.pid, 'SIGABRT'); setTimeout(() => {}, 5000);`);
    expect(r.signal).toBe('SIGABRT');
    expect(r.stderr).not.toContain('peftjs native');
  });
});
