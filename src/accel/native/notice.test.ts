// When `peft train` says that the native kernels are off: only when their
// addon is installed but did not build or load, never when the user turned
// them off or never installed them; with a fix that fits the cause.
import { describe, expect, it } from 'vitest';
import { nativeOffNotice } from './notice.js';

const off = (reason: string, extra: object = {}) => ({ active: false, reason, kernels: [], packageFound: true, ...extra });

describe('nativeOffNotice', () => {
  it('built but does not load: names the reason, the slower backend and the rebuild', () => {
    const line = nativeOffNotice(off('libopenblas.so.0: cannot open shared object file: No such file or directory', { openblasInstalled: false }), 'wasm', false);
    expect(line).toBe(
      'native kernels off: libopenblas.so.0: cannot open shared object file: No such file or directory; this run uses wasm alone, about 2-4x slower; fix: apt-get install libopenblas-dev && npm rebuild @peftjs/native (PEFT_NATIVE=0 turns them off without this line)',
    );
  });

  it('a failed build with OpenBLAS installed: rebuild, and where the log is', () => {
    const line = nativeOffNotice(off('node-gyp failed: fatal error: napi.h: No such file or directory', { openblasInstalled: true }), 'cpu', false);
    expect(line).toMatch(/^native kernels off: node-gyp failed: .*; this run uses cpu alone, about 2-4x slower; fix: npm rebuild @peftjs\/native \(the build's log: native\/build\/status\.json\)/);
  });

  it("the install script's reason already says how: no second fix", () => {
    const line = nativeOffNotice(off('OpenBLAS not found: install it (Debian/Ubuntu: apt-get install libopenblas-dev), then npm rebuild @peftjs/native', { openblasInstalled: false }), 'wasm', false);
    expect(line).toBeDefined();
    expect(line!.match(/npm rebuild/g)).toHaveLength(1);
    expect(line).not.toContain('; fix:');
  });

  it('says nothing when the kernels are on, turned off by the user, not installed, or not for this backend', () => {
    expect(nativeOffNotice({ active: true, kernels: ['BatchMatMul'], packageFound: true }, 'wasm', false)).toBeUndefined();
    expect(nativeOffNotice(off('turned off by PEFT_NATIVE=0'), 'wasm', true)).toBeUndefined();
    expect(nativeOffNotice(off('libopenblas.so.0: cannot open'), 'wasm', true)).toBeUndefined();
    expect(nativeOffNotice(off('PEFT_NATIVE=0 at install time'), 'wasm', false)).toBeUndefined();
    expect(nativeOffNotice(off('@peftjs/native is not installed (an optional dependency)', { packageFound: false }), 'wasm', false)).toBeUndefined();
    expect(nativeOffNotice({ active: false, reason: "not used on the 'tensorflow' backend", kernels: [] }, 'tensorflow', false)).toBeUndefined();
  });
});
