// AdaLoRA's importance update of one parameter in one pass (src/core/train/importance.ts,
// used by the RankAllocator): the composite form there runs ~10 tfjs kernels per
// parameter, each a pass over memory plus a scalar tensor, for every A, E and B
// of every SVD layer on every step. This gives the same float32 results bit for
// bit: the same operations in the same order, each rounded to float32 once, and
// no fused multiply-adds (see adam.cc). The scalars are rounded to float32 by
// the caller (as tfjs does when it makes a scalar tensor of a JS number); |x|
// is exact. A missing previous average (the first update) is a zero operand,
// multiplied by its beta like the composite form's zeros, so that 0 * b is
// what it is there (NaN for an infinite b).
#include "fused.h"
#include "parallel.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace peft {
namespace {

// fp-contract=off: no a * b + c contracted to an FMA, should the file be built for a CPU with them.
__attribute__((optimize("fp-contract=off"))) void importanceSpan(int64_t begin, int64_t end, const float* __restrict p,
                                                                 const float* __restrict g, const float* __restrict ema,
                                                                 const float* __restrict unc, float* __restrict emaOut,
                                                                 float* __restrict uncOut, const ImportanceScalars s) {
  // the products of a missing average (zeros) with its beta
  const float zeroB1 = 0.0f * s.beta1, zeroB2 = 0.0f * s.beta2;
  int64_t i = begin;
#if defined(__SSE2__)
  const __m128 b1 = _mm_set1_ps(s.beta1), c1 = _mm_set1_ps(s.oneMinusBeta1);
  const __m128 b2 = _mm_set1_ps(s.beta2), c2 = _mm_set1_ps(s.oneMinusBeta2);
  const __m128 zb1 = _mm_set1_ps(zeroB1), zb2 = _mm_set1_ps(zeroB2);
  const __m128 sign = _mm_set1_ps(-0.0f);
  for (; i + 4 <= end; i += 4) {
    const __m128 ipt = _mm_andnot_ps(sign, _mm_mul_ps(_mm_loadu_ps(p + i), _mm_loadu_ps(g + i)));
    const __m128 e0 = ema ? _mm_mul_ps(_mm_loadu_ps(ema + i), b1) : zb1;
    const __m128 e = _mm_add_ps(e0, _mm_mul_ps(ipt, c1));
    const __m128 u0 = unc ? _mm_mul_ps(_mm_loadu_ps(unc + i), b2) : zb2;
    const __m128 u = _mm_add_ps(u0, _mm_mul_ps(_mm_andnot_ps(sign, _mm_sub_ps(ipt, e)), c2));
    _mm_storeu_ps(emaOut + i, e);
    _mm_storeu_ps(uncOut + i, u);
  }
#endif
  for (; i < end; i++) {
    // ipt = |p * g|
    const float ipt = __builtin_fabsf(p[i] * g[i]);
    // ema' = (ema * b1) + (ipt * (1 - b1))
    const float e = (ema ? ema[i] * s.beta1 : zeroB1) + (ipt * s.oneMinusBeta1);
    // unc' = (unc * b2) + (|ipt - ema'| * (1 - b2))
    const float u = (unc ? unc[i] * s.beta2 : zeroB2) + (__builtin_fabsf(ipt - e) * s.oneMinusBeta2);
    emaOut[i] = e;
    uncOut[i] = u;
  }
}
}  // namespace

void importanceEma(int64_t n, const float* p, const float* g, const float* ema, const float* unc, float* emaOut,
                   float* uncOut, const ImportanceScalars& s) {
  const ImportanceScalars copy = s;
  parallelFor(n, kElementGrain,
              [&](int64_t b, int64_t e) { importanceSpan(b, e, p, g, ema, unc, emaOut, uncOut, copy); });
}

}  // namespace peft
