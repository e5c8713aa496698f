// Which OpenBLAS kernels to ask for, decided before OpenBLAS loads.
//
// Debian's OpenBLAS 0.3.21 is built with DYNAMIC_ARCH: it picks its kernels
// from the CPU's family and model numbers when the library loads. A CPU newer
// than the library (here an Intel Xeon of model 207, AVX-512) is not in its
// tables and falls back to "Prescott", an SSE3 kernel: a float32 product then
// runs at 44 GFLOP/s a core instead of ~205 with the AVX-512 ("SkylakeX")
// kernel, 4.6x slower (docs/native.md). OpenBLAS reads OPENBLAS_CORETYPE when
// it loads, so the addon's loader sets it from the CPU's own feature flags
// unless the user set it.
//
// Only the AVX-512 case is decided here: every CPU with the AVX-512 subsets
// SkylakeX's kernels use (F, CD, BW, DQ, VL) runs them; OpenBLAS's own choice
// stands everywhere else (it knows the AVX2 generations).
'use strict';
const fs = require('node:fs');

const AVX512_SKYLAKEX = ['avx512f', 'avx512cd', 'avx512bw', 'avx512dq', 'avx512vl'];

/** The first processor's feature flags from /proc/cpuinfo (Linux x86-64), or undefined elsewhere. */
function cpuFlags(cpuinfo) {
  let text = cpuinfo;
  if (text === undefined) {
    if (process.platform !== 'linux' || process.arch !== 'x64') return undefined;
    try {
      text = fs.readFileSync('/proc/cpuinfo', 'utf8');
    } catch {
      return undefined;
    }
  }
  const line = text.split('\n').find((l) => /^flags\s*:/.test(l));
  return line ? new Set(line.slice(line.indexOf(':') + 1).trim().split(/\s+/)) : undefined;
}

/**
 * The OPENBLAS_CORETYPE the loader sets: `{ coretype, why }`, or undefined
 * when OpenBLAS's own detection is left alone (the user set OPENBLAS_CORETYPE,
 * PEFT_OPENBLAS_CORETYPE=auto asks for OpenBLAS's choice, or the CPU has no AVX-512).
 */
function chooseCoreType(env = process.env, cpuinfo) {
  if (env.OPENBLAS_CORETYPE) return undefined;
  const asked = env.PEFT_OPENBLAS_CORETYPE;
  if (asked === 'auto') return undefined;
  if (asked) return { coretype: asked, why: 'PEFT_OPENBLAS_CORETYPE' };
  const flags = cpuFlags(cpuinfo);
  if (flags && AVX512_SKYLAKEX.every((f) => flags.has(f))) return { coretype: 'SKYLAKEX', why: 'the CPU has AVX-512' };
  return undefined;
}

module.exports = { chooseCoreType, cpuFlags };
