// Adam's update of one parameter in one pass (src/core/train/adam.ts): the
// composite form there runs ~12 tfjs kernels per parameter, each a pass over
// memory plus a scalar tensor or two; with the many small LoRA parameters of a
// step that is milliseconds of JavaScript. This gives the same float32 results
// bit for bit: the same operations in the same order, each rounded to float32
// once, and no fused multiply-adds (an FMA keeps a product unrounded, which
// the composite form, one kernel per operation, never does). The scalars are
// rounded to float32 by the caller (as tfjs does when it makes a scalar tensor
// of a JS number). sqrt and division are correctly rounded in IEEE arithmetic
// (scalar or vector), as they are on the cpu backend (in double, then rounded:
// exact for float32 operands) and in wasm (f32.sqrt, f32.div).
//
// The loop is written with SSE2 intrinsics (baseline x86-64; 4 lanes) rather
// than left to the vectoriser: GCC keeps sqrtf scalar, with a call to set errno
// for a negative input, unless the whole file is built with -fno-math-errno
// (the optimize attribute and pragma do not do it). With 7 streams of floats
// per element the loop is near memory speed at 4 lanes already.
#include "fused.h"
#include "parallel.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace peft {
namespace {

// fp-contract=off: no a * b + c contracted to an FMA, should the file be built for a CPU with them.
__attribute__((optimize("fp-contract=off"))) void adamSpan(int64_t begin, int64_t end, const float* __restrict p,
                                                           const float* __restrict g, const float* __restrict m,
                                                           const float* __restrict v, float* __restrict pOut,
                                                           float* __restrict mOut, float* __restrict vOut,
                                                           const AdamScalars s) {
  int64_t i = begin;
#if defined(__SSE2__)
  const __m128 b1 = _mm_set1_ps(s.beta1), c1 = _mm_set1_ps(s.oneMinusBeta1);
  const __m128 b2 = _mm_set1_ps(s.beta2), c2 = _mm_set1_ps(s.oneMinusBeta2);
  const __m128 sq = _mm_set1_ps(s.sqrtBc2), eps = _mm_set1_ps(s.eps), step = _mm_set1_ps(s.stepSize);
  for (; i + 4 <= end; i += 4) {
    const __m128 gi = _mm_loadu_ps(g + i);
    const __m128 mi = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(m + i), b1), _mm_mul_ps(gi, c1));
    const __m128 vi = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(v + i), b2), _mm_mul_ps(_mm_mul_ps(gi, gi), c2));
    const __m128 denom = _mm_add_ps(_mm_div_ps(_mm_sqrt_ps(vi), sq), eps);
    _mm_storeu_ps(pOut + i, _mm_sub_ps(_mm_loadu_ps(p + i), _mm_mul_ps(_mm_div_ps(mi, denom), step)));
    _mm_storeu_ps(mOut + i, mi);
    _mm_storeu_ps(vOut + i, vi);
  }
#endif
  for (; i < end; i++) {
    const float gi = g[i];
    // m' = (m * b1) + (g * (1 - b1))
    const float mi = (m[i] * s.beta1) + (gi * s.oneMinusBeta1);
    // v' = (v * b2) + ((g * g) * (1 - b2))
    const float vi = (v[i] * s.beta2) + ((gi * gi) * s.oneMinusBeta2);
    // denom = (sqrt(v') / sqrt(bc2)) + eps
    const float denom = (__builtin_sqrtf(vi) / s.sqrtBc2) + s.eps;
    // p' = p - ((m' / denom) * (lr / bc1))
    pOut[i] = p[i] - ((mi / denom) * s.stepSize);
    mOut[i] = mi;
    vOut[i] = vi;
  }
}
}  // namespace

void adamUpdate(int64_t n, const float* p, const float* g, const float* m, const float* v, float* pOut, float* mOut,
                float* vOut, const AdamScalars& s) {
  const AdamScalars copy = s;
  parallelFor(n, kElementGrain, [&](int64_t b, int64_t e) { adamSpan(b, e, p, g, m, v, pOut, mOut, vOut, copy); });
}

}  // namespace peft
