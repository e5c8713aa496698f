// A per-channel affine map over the last axis, y = x * scale + shift (frozen
// batch norm in channels-last layout: the composite is a Multiply, then an
// Add), in one pass: two IEEE operations an element in that order and no
// fused multiply-add, so bit-identical to the two kernels it replaces.
#include <algorithm>
#include <cstdint>

#include "fused.h"
#include "parallel.h"
#include "simd.h"

namespace peft {
namespace {

// rows [r0, r1): each product rounded before the sum (fp-contract off: GCC would fuse them)
__attribute__((optimize("fp-contract=off"))) PEFT_CLONES void affineRows(int64_t cols, int64_t r0, int64_t r1,
                                                                          const float* __restrict x,
                                                                          const float* __restrict scale,
                                                                          const float* __restrict shift,
                                                                          float* __restrict y) {
  for (int64_t r = r0; r < r1; r++) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    for (int64_t c = 0; c < cols; c++) {
      const float p = xr[c] * scale[c];
      yr[c] = p + shift[c];
    }
  }
}
}  // namespace

void channelAffine(int64_t rows, int64_t cols, const float* x, const float* scale, const float* shift, float* y) {
  if (rows <= 0 || cols <= 0) return;
  // about 32k elements a part at least (the element-wise kernels' grain, elementwise.cc)
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 15) / cols);
  parallelFor(rows, grain, [&](int64_t r0, int64_t r1) { affineRows(cols, r0, r1, x, scale, shift, y); });
}

}  // namespace peft
