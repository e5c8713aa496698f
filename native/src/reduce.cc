// Sum over the middle axis of x [outer, reduced, inner] (reduce.h). With
// inner = 1 (the last axes reduced) each output is a row sum with eight
// accumulators; otherwise the reduced rows are added into the output row in
// turn, a vector of inner sums at a time. Split over the addon's threads by
// output rows when there are several and enough work.
#include "reduce.h"

#include <algorithm>
#include <vector>

#include "napi_args.h"
#include "parallel.h"
#include "rowsum.h"
#include "simd.h"

namespace peft {
namespace {

PEFT_CLONES void sumRows(int64_t begin, int64_t end, int64_t reduced, const float* __restrict x, float* __restrict y) {
  for (int64_t o = begin; o < end; o++) {
    const float* xo = x + o * reduced;
    y[o] = rowSum(reduced, [&](int64_t j) PEFT_LAMBDA_INLINE { return xo[j]; });
  }
}

PEFT_CLONES void sumColumns(int64_t begin, int64_t end, int64_t reduced, int64_t inner, const float* __restrict x,
                            float* __restrict y) {
  for (int64_t o = begin; o < end; o++) {
    float* yo = y + o * inner;
    const float* xo = x + o * reduced * inner;
    std::fill(yo, yo + inner, 0.0f);
    for (int64_t r = 0; r < reduced; r++) {
      const float* xr = xo + r * inner;
      for (int64_t j = 0; j < inner; j++) yo[j] += xr[j];
    }
  }
}

napi_value Sum(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc < 3) {
    fail(env, "sum: expected (x, y, params)");
    return nullptr;
  }
  F32 x, y;
  std::vector<int64_t> p;
  if (!f32(env, argv[0], &x, "sum x") || !f32(env, argv[1], &y, "sum y") || !i32(env, argv[2], &p, 5, "sum params")) {
    return nullptr;
  }
  const int64_t outer = p[0], reduced = p[1], inner = p[2];
  if (outer < 0 || reduced < 0 || inner < 0) {
    fail(env, "sum: negative size");
    return nullptr;
  }
  if (reduced > 0 && outer * inner > x.length / reduced) {
    fail(env, "sum x: outside the array");
    return nullptr;
  }
  if (!inside(env, x, p[3], outer * reduced * inner, "sum x") || !inside(env, y, p[4], outer * inner, "sum y")) {
    return nullptr;
  }
  sumMiddle(outer, reduced, inner, x.data + p[3], y.data + p[4]);
  return undefinedValue(env);
}
}  // namespace

void sumMiddle(int64_t outer, int64_t reduced, int64_t inner, const float* x, float* y) {
  if (outer == 0 || inner == 0) return;
  // output rows per thread: at least ~64k elements read each
  const int64_t perRow = std::max<int64_t>(1, reduced * inner);
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / perRow);
  if (inner == 1) {
    parallelFor(outer, grain, [&](int64_t b, int64_t e) { sumRows(b, e, reduced, x, y); });
  } else {
    parallelFor(outer, grain, [&](int64_t b, int64_t e) { sumColumns(b, e, reduced, inner, x, y); });
  }
}

void defineReduceKernels(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"sum", nullptr, Sum, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}

}  // namespace peft
