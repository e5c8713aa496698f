// Sums and maxima over a row with 8 independent accumulators: without
// -ffast-math the compiler may not reorder a single running sum, so the lanes
// are written out; the fixed inner loop of 8 becomes one vector register.
#pragma once
#include "simd.h"
#include <cstdint>

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
// exp(v - max) for every element, which is NaN there anyway.
PEFT_INLINE float rowMax(int64_t n, const float* v) {
  float acc[8];
  for (int l = 0; l < 8; l++) acc[l] = v[0];
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    for (int l = 0; l < 8; l++) acc[l] = v[j + l] > acc[l] ? v[j + l] : acc[l];
  }
  float m = acc[0];
  for (int l = 1; l < 8; l++) m = acc[l] > m ? acc[l] : m;
  for (; j < n; j++) m = v[j] > m ? v[j] : m;
  return m;
}

}  // namespace peft
