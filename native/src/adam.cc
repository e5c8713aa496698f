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
#include "adam.h"

#include <algorithm>
#include <string>
#include <vector>

#include "fused.h"
#include "napi_args.h"
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

// The tensors' elements as one range [0, total): a part [b, e) of it updates the pieces of the tensors it
// covers. Each element gets the same operations as in adamUpdate whatever part it falls in (the vector and
// scalar loops round alike), so the result does not depend on the split.
void adamUpdateMulti(const AdamTensor* tensors, int64_t count, const AdamScalars& s) {
  std::vector<int64_t> start(static_cast<size_t>(count) + 1, 0);
  for (int64_t i = 0; i < count; i++) start[i + 1] = start[i] + tensors[i].n;
  const int64_t total = start[count];
  if (total == 0) return;
  const AdamScalars copy = s;
  parallelFor(total, kElementGrain, [&](int64_t b, int64_t e) {
    // the first tensor ending after b
    int64_t i = std::upper_bound(start.begin(), start.end(), b) - start.begin() - 1;
    for (; i < count && start[i] < e; i++) {
      const AdamTensor& t = tensors[i];
      const int64_t lo = std::max(b, start[i]) - start[i], hi = std::min(e, start[i + 1]) - start[i];
      if (lo < hi) adamSpan(lo, hi, t.p, t.g, t.m, t.v, t.pOut, t.mOut, t.vOut, copy);
    }
  });
}

namespace {
napi_value AdamMulti(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  const std::string fn = "adamMulti";
  if (argc < 3) return fail(env, fn + ": expected arrays, params, scalars"), nullptr;
  std::vector<int64_t> q;
  if (!i32(env, argv[1], &q, -1, "adamMulti params")) return nullptr;
  if (q.empty() || q[0] < 0 || static_cast<int64_t>(q.size()) != 1 + 8 * q[0]) {
    return fail(env, fn + ": params must be [count, then 8 numbers a tensor]"), nullptr;
  }
  const int64_t count = q[0];
  bool isArray = false;
  uint32_t len = 0;
  if (napi_is_array(env, argv[0], &isArray) != napi_ok || !isArray) return fail(env, fn + ": expected an array of Float32Arrays"), nullptr;
  napi_get_array_length(env, argv[0], &len);
  if (static_cast<int64_t>(len) != 7 * count) return fail(env, fn + ": expected " + std::to_string(7 * count) + " arrays"), nullptr;
  bool typed = false;
  napi_typedarray_type type = napi_int8_array;
  size_t slen = 0;
  void* sdata = nullptr;
  if (napi_is_typedarray(env, argv[2], &typed) != napi_ok || !typed ||
      napi_get_typedarray_info(env, argv[2], &type, &slen, &sdata, nullptr, nullptr) != napi_ok ||
      type != napi_float64_array || slen != 7) {
    return fail(env, fn + " scalars: expected a Float64Array of 7"), nullptr;
  }
  const double* d = static_cast<const double*>(sdata);
  const AdamScalars s{static_cast<float>(d[0]), static_cast<float>(d[1]), static_cast<float>(d[2]), static_cast<float>(d[3]),
                      static_cast<float>(d[4]), static_cast<float>(d[5]), static_cast<float>(d[6])};
  static const char* const kNames[7] = {"p", "g", "m", "v", "pOut", "mOut", "vOut"};
  std::vector<AdamTensor> ts(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; i++) {
    const int64_t* r = q.data() + 1 + 8 * i;
    const int64_t n = r[0];
    if (n < 0) return fail(env, fn + ": negative size"), nullptr;
    float* ptr[7];
    for (int k = 0; k < 7; k++) {
      napi_value v;
      napi_get_element(env, argv[0], static_cast<uint32_t>(7 * i + k), &v);
      const std::string what = fn + " " + kNames[k] + std::to_string(i);
      F32 a;
      if (!f32(env, v, &a, what.c_str()) || !inside(env, a, r[1 + k], n, what.c_str())) return nullptr;
      ptr[k] = a.data + r[1 + k];
    }
    ts[i] = AdamTensor{n, ptr[0], ptr[1], ptr[2], ptr[3], ptr[4], ptr[5], ptr[6]};
  }
  adamUpdateMulti(ts.data(), count, s);
  return undefinedValue(env);
}
}  // namespace

void defineAdamKernels(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"adamMulti", nullptr, AdamMulti, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}

}  // namespace peft
