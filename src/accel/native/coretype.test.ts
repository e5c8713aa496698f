// The OpenBLAS kernels the addon's loader asks for (native/coretype.js): the
// AVX-512 kernels on a CPU with AVX-512, OpenBLAS's own choice otherwise, and
// the user's OPENBLAS_CORETYPE always wins.
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { loadAddon } from './addon.js';

const { chooseCoreType, cpuFlags } = createRequire(import.meta.url)('../../../native/coretype.js') as {
  chooseCoreType(env?: Record<string, string | undefined>, cpuinfo?: string): { coretype: string; why: string } | undefined;
  cpuFlags(cpuinfo?: string): Set<string> | undefined;
};

const cpuinfo = (flags: string) => `processor\t: 0\nvendor_id\t: GenuineIntel\nmodel\t\t: 207\nflags\t\t: ${flags}\n\nprocessor\t: 1\n`;
const AVX512 = 'fpu sse sse2 avx fma avx2 avx512f avx512dq avx512cd avx512bw avx512vl avx512_vnni';

describe('OpenBLAS core type', () => {
  it('asks for the AVX-512 kernels on a CPU with the AVX-512 subsets they use', () => {
    expect(chooseCoreType({}, cpuinfo(AVX512))).toEqual({ coretype: 'SKYLAKEX', why: 'the CPU has AVX-512' });
  });

  it("leaves OpenBLAS's choice alone without AVX-512, or with only part of it", () => {
    expect(chooseCoreType({}, cpuinfo('fpu sse sse2 avx fma avx2'))).toBeUndefined();
    expect(chooseCoreType({}, cpuinfo('fpu sse avx2 avx512f avx512cd'))).toBeUndefined(); // Knights Landing: no BW/DQ/VL
    expect(chooseCoreType({}, 'no flags line here')).toBeUndefined();
  });

  it("never overrides the user's OPENBLAS_CORETYPE; PEFT_OPENBLAS_CORETYPE chooses or defers", () => {
    expect(chooseCoreType({ OPENBLAS_CORETYPE: 'HASWELL' }, cpuinfo(AVX512))).toBeUndefined();
    expect(chooseCoreType({ PEFT_OPENBLAS_CORETYPE: 'auto' }, cpuinfo(AVX512))).toBeUndefined();
    expect(chooseCoreType({ PEFT_OPENBLAS_CORETYPE: 'ZEN' }, cpuinfo('avx2'))).toEqual({ coretype: 'ZEN', why: 'PEFT_OPENBLAS_CORETYPE' });
  });

  it('reads the first processor of /proc/cpuinfo', () => {
    expect(cpuFlags(cpuinfo('a b  c'))).toEqual(new Set(['a', 'b', 'c']));
  });

  it('the loaded OpenBLAS runs the kernels chosen for this machine, and the variable is gone again', () => {
    const load = loadAddon();
    if (!load.addon) return; // no addon on this machine: nothing loaded, nothing chosen
    const expected = chooseCoreType(process.env);
    if (expected) {
      expect(load.core).toEqual(expected);
      expect(load.addon.info().corename.toUpperCase()).toBe(expected.coretype);
    } else {
      expect(load.core).toBeUndefined();
    }
    if (expected) expect(process.env.OPENBLAS_CORETYPE).toBeUndefined();
  });
});
