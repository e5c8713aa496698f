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
#elif defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PEFT_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define PEFT_CLONES
#endif

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
