// Layer norm over the last axis: the forward pass writes y and each row's
// mean and rstd (two floats per row, all the backward pass needs besides x);
// the backward pass gives dx, dw and db with the row in cache (two passes over
// it, one over memory). The threads' dw/db partial sums are added in a fixed
// order, so a result depends only on the thread count.
#include <cmath>
#include <map>
#include <mutex>
#include <vector>

#include "fused.h"
#include "parallel.h"
#include "rowsum.h"
#include "simd.h"

namespace peft {
namespace {

PEFT_CLONES void forwardRows(const LayerNormShape& s, int64_t begin, int64_t end, const float* __restrict x,
                             const float* __restrict w, const float* __restrict b, float* __restrict y,
                             float* __restrict mean, float* __restrict rstd) {
  const int64_t n = s.cols;
  const float count = static_cast<float>(n);
  for (int64_t r = begin; r < end; r++) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    const float m = rowSum(n, [&](int64_t j) PEFT_LAMBDA_INLINE { return xr[j]; }) / count;
    const float var = rowSum(n, [&](int64_t j) PEFT_LAMBDA_INLINE { return (xr[j] - m) * (xr[j] - m); }) / count;
    const float rs = 1.0f / std::sqrt(var + s.eps);
    mean[r] = m;
    rstd[r] = rs;
    if (w && b) {
      for (int64_t j = 0; j < n; j++) yr[j] = ((xr[j] - m) * rs) * w[j] + b[j];
    } else if (w) {
      for (int64_t j = 0; j < n; j++) yr[j] = ((xr[j] - m) * rs) * w[j];
    } else if (b) {
      for (int64_t j = 0; j < n; j++) yr[j] = ((xr[j] - m) * rs) + b[j];
    } else {
      for (int64_t j = 0; j < n; j++) yr[j] = (xr[j] - m) * rs;
    }
  }
}

// dx for rows [begin, end); adds dy * xhat to dwAcc and dy to dbAcc (each may be null).
// No fused multiply-adds here: in g w - mean(g w) the product would be kept
// exact on one side and rounded on the other, and the difference, amplified by
// rstd (1 / sqrt(eps) for a constant row, as a zero-padded token), is noise
// where the composite form gives exactly 0 (a one-column or constant row).
PEFT_CLONES __attribute__((optimize("fp-contract=off"))) void backwardRows(const LayerNormShape& s, int64_t begin, int64_t end, const float* __restrict dy,
                              const float* __restrict x, const float* __restrict mean, const float* __restrict rstd,
                              const float* __restrict w, float* __restrict dx, float* __restrict dwAcc,
                              float* __restrict dbAcc) {
  const int64_t n = s.cols;
  const float count = static_cast<float>(n);
  for (int64_t r = begin; r < end; r++) {
    const float* g0 = dy + r * n;
    const float* xr = x + r * n;
    float* dxr = dx + r * n;
    const float m = mean[r];
    const float rs = rstd[r];
    float meanG, meanGx;
    if (w) {
      meanG = rowSum(n, [&](int64_t j) PEFT_LAMBDA_INLINE { return g0[j] * w[j]; }) / count;
      meanGx = rowSum(n, [&](int64_t j) PEFT_LAMBDA_INLINE { return (g0[j] * w[j]) * ((xr[j] - m) * rs); }) / count;
      for (int64_t j = 0; j < n; j++) {
        const float xhat = (xr[j] - m) * rs;
        dxr[j] = (((g0[j] * w[j]) - meanG) - xhat * meanGx) * rs;
      }
    } else {
      meanG = rowSum(n, [&](int64_t j) PEFT_LAMBDA_INLINE { return g0[j]; }) / count;
      meanGx = rowSum(n, [&](int64_t j) PEFT_LAMBDA_INLINE { return g0[j] * ((xr[j] - m) * rs); }) / count;
      for (int64_t j = 0; j < n; j++) {
        const float xhat = (xr[j] - m) * rs;
        dxr[j] = ((g0[j] - meanG) - xhat * meanGx) * rs;
      }
    }
    if (dwAcc) {
      for (int64_t j = 0; j < n; j++) dwAcc[j] += g0[j] * ((xr[j] - m) * rs);
    }
    if (dbAcc) {
      for (int64_t j = 0; j < n; j++) dbAcc[j] += g0[j];
    }
  }
}
}  // namespace

void layerNormForward(const LayerNormShape& s, const float* x, const float* w, const float* b, float* y, float* mean,
                      float* rstd) {
  if (s.cols <= 0) return;
  parallelFor(s.rows, rowGrainFor(s.cols), [&](int64_t begin, int64_t end) {
    forwardRows(s, begin, end, x, w, b, y, mean, rstd);
  });
}

void layerNormBackward(const LayerNormShape& s, const float* dy, const float* x, const float* mean, const float* rstd,
                       const float* w, float* dx, float* dw, float* db) {
  const int64_t n = s.cols;
  if (n <= 0) return;
  // one [dw | db] accumulator per part, keyed by its first row: summed in row order
  std::map<int64_t, std::vector<float>> parts;
  std::mutex merge;
  const bool sums = dw || db;
  parallelFor(s.rows, rowGrainFor(n), [&](int64_t begin, int64_t end) {
    std::vector<float> acc(sums ? 2 * n : 0, 0.0f);
    backwardRows(s, begin, end, dy, x, mean, rstd, w, dx, dw ? acc.data() : nullptr, db ? acc.data() + n : nullptr);
    if (!sums) return;
    std::lock_guard<std::mutex> lock(merge);
    parts.emplace(begin, std::move(acc));
  });
  if (dw) std::fill(dw, dw + n, 0.0f);
  if (db) std::fill(db, db + n, 0.0f);
  for (const auto& part : parts) {
    const float* acc = part.second.data();
    if (dw) {
      for (int64_t j = 0; j < n; j++) dw[j] += acc[j];
    }
    if (db) {
      for (int64_t j = 0; j < n; j++) db[j] += acc[n + j];
    }
  }
}

}  // namespace peft
