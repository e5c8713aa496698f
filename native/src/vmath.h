// exp and erf for float32 written so that GCC vectorises the loops that call
// them: no library calls, no branches (selects only), bit tricks for 2^n.
// Inlined into the PEFT_CLONES kernels, so they get AVX2/FMA in that clone.
#pragma once
#include "simd.h"
#include <cstdint>
#include <cstring>

namespace peft {

// Round to the nearest integer for |v| < 2^22: adding 1.5 * 2^23 leaves no
// fraction bits (no -ffast-math here, so the compiler keeps both operations).
PEFT_INLINE float roundNearest(float v) {
  const float magic = 12582912.0f;
  return (v + magic) - magic;
}

// e^x, relative error <= 1e-7 on [-87.3, 0] (measured; the series' own is 5e-9).
// x = n ln2 + r, |r| <= ln2 / 2; e^r by its Taylor series to r^7; 2^n built in
// the exponent bits. Inputs below ln(FLT_MIN) give 0 (no subnormals), above
// 88 give e^88 (callers pass x <= 0: softmax's x - max, GELU's -x^2 / 2); NaN stays NaN.
PEFT_INLINE float expFast(float x) {
  const float lo = -87.33654475f;  // ln(FLT_MIN): n = -126 at the bottom
  float c = x > 88.0f ? 88.0f : x;
  c = c < lo ? lo : c;
  const float n = roundNearest(c * 1.44269504088896341f);
  float r = c - n * 0.693359375f;  // ln2 in two parts: the high part times n is exact
  r = r - n * -2.12194440e-4f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  const float y = p * scale;
  return x < lo ? 0.0f : y;
}

// erf(x) as x P(x^2) / Q(x^2) on [-4, 4] (erf(4) rounds to 1 in float32),
// clamped outside. The coefficients are a minimax fit made for this file
// (linear programming on 6500 points of [0, 4]): 8e-8 absolute error in
// exact arithmetic, 3.1e-7 measured in float32 (4.1e-7 without FMA); tfjs's
// own Erf (Abramowitz and Stegun 7.1.26) is within 1.5e-7 before rounding. Computed on |x| with the
// sign put back (erf is odd): one clamp instead of two, which GCC would
// otherwise split into branches with constants folded in.
PEFT_INLINE float erfFast(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  const uint32_t sign = bits & 0x80000000u;
  const uint32_t absBits = bits & 0x7fffffffu;
  float a;
  std::memcpy(&a, &absBits, sizeof a);
  a = 4.0f < a ? 4.0f : a;  // NaN stays NaN
  const float t = a * a;
  float p = 1.920207815e-08f;
  p = p * t + -2.001355597e-06f;
  p = p * t + 1.578941155e-04f;
  p = p * t + 4.386135377e-03f;
  p = p * t + 5.272476375e-02f;
  p = p * t + 2.160757482e-01f;
  p = p * t + 1.128378868e+00f;
  float q = 1.120994799e-03f;
  q = q * t + 1.573862880e-02f;
  q = q * t + 1.216883957e-01f;
  q = q * t + 5.248199105e-01f;
  q = q * t + 1.0f;
  // the fit and its rounding may overshoot 1 by a few ulps near |x| = 4: keep erf <= 1, so that
  // 1 + erf(x) is never negative (GELU of a large negative x is -0, not a small positive number)
  float r = a * p / q;
  r = 1.0f < r ? 1.0f : r;
  uint32_t out;
  std::memcpy(&out, &r, sizeof out);
  out |= sign;
  std::memcpy(&r, &out, sizeof r);
  return r;
}

}  // namespace peft
