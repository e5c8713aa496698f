// Softmax over the last axis, and its gradient, one row at a time with the
// row in cache: the max, then exp(x - max) and its sum in one pass, then the division
// (as tfjs's kernels: exp(x - max) / sum). Backward: dx = dy y - sum(dy y) y.
#include "fused.h"
#include "parallel.h"
#include "rowsum.h"
#include "simd.h"
#include "vmath.h"

namespace peft {
namespace {

PEFT_CLONES void softmaxRows(int64_t n, int64_t begin, int64_t end, const float* __restrict x, float* __restrict y) {
  for (int64_t r = begin; r < end; r++) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    const float m = rowMax(n, xr);
    // exp(x - max), stored and summed in the same pass
    const float sum = rowSum(n, [&](int64_t j) PEFT_LAMBDA_INLINE {
      const float e = expFast(xr[j] - m);
      yr[j] = e;
      return e;
    });
    for (int64_t j = 0; j < n; j++) yr[j] = yr[j] / sum;
  }
}

PEFT_CLONES void softmaxGradRows(int64_t n, int64_t begin, int64_t end, const float* __restrict y,
                                 const float* __restrict dy, float* __restrict dx) {
  for (int64_t r = begin; r < end; r++) {
    const float* yr = y + r * n;
    const float* gr = dy + r * n;
    float* dr = dx + r * n;
    const float s = rowSum(n, [&](int64_t j) PEFT_LAMBDA_INLINE { return gr[j] * yr[j]; });
    for (int64_t j = 0; j < n; j++) dr[j] = gr[j] * yr[j] - s * yr[j];
  }
}
}  // namespace

void softmaxRowsSerial(int64_t rows, int64_t cols, const float* x, float* y) {
  if (cols > 0) softmaxRows(cols, 0, rows, x, y);
}

void softmaxGradRowsSerial(int64_t rows, int64_t cols, const float* y, const float* dy, float* dx) {
  if (cols > 0) softmaxGradRows(cols, 0, rows, y, dy, dx);
}

void softmaxForward(int64_t rows, int64_t cols, const float* x, float* y) {
  if (cols <= 0) return;
  parallelFor(rows, rowGrainFor(cols), [&](int64_t b, int64_t e) { softmaxRows(cols, b, e, x, y); });
}

void softmaxBackward(int64_t rows, int64_t cols, const float* y, const float* dy, float* dx) {
  if (cols <= 0) return;
  parallelFor(rows, rowGrainFor(cols), [&](int64_t b, int64_t e) { softmaxGradRows(cols, b, e, y, dy, dx); });
}

}  // namespace peft
