// Per-function multiversioning: a function marked PEFT_CLONES is compiled
// twice, for x86-64-v3 (AVX2, FMA; Haswell and Zen or later) and for the
// baseline, and the loader picks the clone the CPU supports (GCC's
// target_clones, an ifunc). The addon is built once for any x86-64 machine,
// so -march=native is not an option.
//
// Not "arch=haswell": GCC's dispatcher tests that clone with
// __builtin_cpu_is("haswell"), true on Haswell itself only, so every other
// CPU (later Intel cores, AMD EPYC) ran the baseline SSE2 clone. "arch=x86-64-v3"
// is tested by the features (GCC 12 and later); older GCCs get an AVX2 clone
// (vectors as wide, no fused multiply-add).
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#define PEFT_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#define PEFT_CLONES_AVX512 __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#elif defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PEFT_CLONES __attribute__((target_clones("avx2", "default")))
#define PEFT_CLONES_AVX512 PEFT_CLONES
#else
#define PEFT_CLONES
#define PEFT_CLONES_AVX512
#endif

// PEFT_CLONES_AVX512 adds an x86-64-v4 (AVX-512) clone, for the kernels it
// measured faster in: GELU 553 -> 370 us and its gradient 1050 -> 600 us over
// 2M elements on the 2-vCPU Xeon (interleaved runs). With it on every kernel,
// layer norm over rows of 128 ran 65 -> 130 us and the element-wise ones and
// attention no faster, so PEFT_CLONES stays at AVX2. Same IEEE operations in
// every clone (no -ffast-math): the results do not depend on the clone.

// Helpers called from a PEFT_CLONES function must be inlined into each clone
// to be compiled for its target (GCC does not inline a function of another
// target unless it is always_inline), and to let the loop around them vectorise.
#if defined(__GNUC__)
#define PEFT_INLINE inline __attribute__((always_inline))
#define PEFT_LAMBDA_INLINE __attribute__((always_inline))
#else
#define PEFT_INLINE inline
#define PEFT_LAMBDA_INLINE
#endif
