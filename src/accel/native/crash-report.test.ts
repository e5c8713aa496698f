// The addon's crash report (native/src/crash.cc): a process that loaded the
// addon and dies of SIGABRT (how glibc ends a process whose heap it found
// corrupt) prints its native stack to stderr first, and still dies of SIGABRT.
// Skipped with the reason when the addon is not built.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { built, whyNotBuilt } from '../../../test/support/native.js';

if (!built) console.log(`native crash report test skipped: ${whyNotBuilt}`);
const nativeIndex = createRequire(import.meta.url).resolve('@peftjs/native');

describe('native crash report', () => {
  it.skipIf(!built)('prints the native stack of a SIGABRT, then dies of it as before', () => {
    const script = `require(${JSON.stringify(nativeIndex)}).load(); process.kill(process.pid, 'SIGABRT'); setTimeout(() => {}, 5000);`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect(r.signal).toBe('SIGABRT');
    expect(r.stderr).toContain('peftjs native: SIGABRT; the native stack of the thread that raised it');
    // the frames: the handler's own, then the C library's kill
    expect(r.stderr).toMatch(/peftjs_native\.node/);
    expect(r.stderr).toMatch(/libc\.so/);
  });

  it('a process that did not load the addon dies of SIGABRT without the report', () => {
    const r = spawnSync(process.execPath, ['-e', `process.kill(process.pid, 'SIGABRT'); setTimeout(() => {}, 5000);`], { encoding: 'utf8', timeout: 20_000 });
    expect(r.signal).toBe('SIGABRT');
    expect(r.stderr).not.toContain('peftjs native');
  });
});
