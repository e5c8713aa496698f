// Exact (erf) GELU and its gradient in one pass each, vectorised through
// vmath.h's exp and erf. The operations follow the composite forms of
// src/core/nn/functional.ts in the same order, so the two agree to float
// rounding.
#include "fused.h"
#include "parallel.h"
#include "simd.h"
#include "vmath.h"

namespace peft {
namespace {

constexpr float kSqrtHalf = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;

PEFT_CLONES_AVX512 void geluSpan(int64_t begin, int64_t end, const float* __restrict x, float* __restrict y) {
  for (int64_t i = begin; i < end; i++) {
    const float v = x[i];
    y[i] = (v * 0.5f) * (erfFast(v * kSqrtHalf) + 1.0f);
  }
}

PEFT_CLONES_AVX512 void geluGradSpan(int64_t begin, int64_t end, const float* __restrict x, const float* __restrict dy,
                              float* __restrict dx) {
  for (int64_t i = begin; i < end; i++) {
    const float v = x[i];
    const float cdf = (erfFast(v * kSqrtHalf) + 1.0f) * 0.5f;
    const float xpdf = (v * expFast((v * v) * -0.5f)) * kInvSqrt2Pi;
    dx[i] = dy[i] * (cdf + xpdf);
  }
}
}  // namespace

void geluForward(int64_t n, const float* x, float* y) {
  parallelFor(n, kElementGrain, [&](int64_t b, int64_t e) { geluSpan(b, e, x, y); });
}

void geluBackward(int64_t n, const float* x, const float* dy, float* dx) {
  parallelFor(n, kElementGrain, [&](int64_t b, int64_t e) { geluGradSpan(b, e, x, dy, dx); });
}

}  // namespace peft
