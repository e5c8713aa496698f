// Sums and maxima over a row with 8 independent accumulators: without
// -ffast-math the compiler may not reorder a single running sum, so the lanes
// are written out; the fixed inner loop of 8 becomes one vector register.
#pragma once
#include "simd.h"
#include <cstdint>
#include <cstring>

namespace peft {

template <class F>
PEFT_INLINE float rowSum(int64_t n, F term) {
  float acc[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    for (int l = 0; l < 8; l++) acc[l] += term(j + l);
  }
  float tail = 0.0f;
  for (; j < n; j++) tail += term(j);
  return (((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))) + tail;
}

// max over v[0..n), n >= 1. A NaN may be skipped: callers (softmax) compute
// exp(v - max) for every element, which is NaN there anyway. The 8 lanes are
// two vectors of 4 (GCC's vector extension): GCC 12 does not vectorise the
// max of an array of 8 accumulators (it kept 8 scalar maxss), and the
// element-wise select below is one maxps (x > acc ? x : acc, the same value
// per lane as the scalar form); lanes and their final order as before, so the
// result is bit-identical. Vectors of 4 are native on every clone (SSE2 and
// AVX2); vectors of 8 on the baseline one went through the stack.
PEFT_INLINE float rowMax(int64_t n, const float* v) {
  typedef float F4 __attribute__((vector_size(16)));
  F4 lo = {v[0], v[0], v[0], v[0]}, hi = lo;
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    F4 a, b;
    std::memcpy(&a, v + j, sizeof a);
    std::memcpy(&b, v + j + 4, sizeof b);
    lo = a > lo ? a : lo;
    hi = b > hi ? b : hi;
  }
  const float acc[8] = {lo[0], lo[1], lo[2], lo[3], hi[0], hi[1], hi[2], hi[3]};
  float m = acc[0];
  for (int l = 1; l < 8; l++) m = acc[l] > m ? acc[l] : m;
  for (; j < n; j++) m = v[j] > m ? v[j] : m;
  return m;
}

}  // namespace peft
