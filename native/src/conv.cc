// Conv2D and both of its gradients as matrix products (im2col / col2im):
//
//   y      [rows, co] = cols [rows, K] x W [K, co]
//   dcols  [rows, K]  = dy [rows, co] x W^T           (then scattered into dx)
//   dW     [K, co]    = cols^T [K, rows] x dy [rows, co]
//
// with rows = batch * outH * outW, K = kh * kw * ci and cols row p holding the
// input patch that output position p reads, in the filter's (ky, kx, c) order.
// cols is built for a chunk of rows at a time (at most kChunkElements floats);
// a 1x1 stride-1 unpadded convolution needs no cols at all.
#include "conv.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "blas.h"
#include "parallel.h"

namespace peft {
namespace {
constexpr int64_t kChunkElements = int64_t{1} << 22;
// elements copied per thread at least (a few hundred microseconds' worth)
constexpr int64_t kParallelCopy = int64_t{1} << 18;

// One scratch buffer per calling thread (a JS thread; worker_threads each load
// the addon into the same process), reused between calls.
std::vector<float>& scratch(int64_t size) {
  thread_local std::vector<float> buffer;
  if (static_cast<int64_t>(buffer.size()) < size) {
    buffer.clear();
    buffer.shrink_to_fit();
    buffer.resize(size);
  }
  return buffer;
}

bool pointwise(const ConvShape& s) {
  return s.kh == 1 && s.kw == 1 && s.sh == 1 && s.sw == 1 && s.top == 0 && s.left == 0 && s.outH == s.inH &&
         s.outW == s.inW;
}

int64_t chunkRows(const ConvShape& s, int64_t K) {
  return std::max<int64_t>(1, std::min<int64_t>(s.rows(), kChunkElements / std::max<int64_t>(1, K)));
}

// cols[r, :] = the patch of output position r0 + r, for r in [0, count)
void im2col(const ConvShape& s, const float* x, int64_t r0, int64_t count, float* cols) {
  const int64_t K = static_cast<int64_t>(s.kh) * s.kw * s.ci;
  const int64_t grain = std::max<int64_t>(1, kParallelCopy / std::max<int64_t>(1, K));
  parallelFor(count, grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++) {
      const int64_t p = r0 + r;
      const int ox = static_cast<int>(p % s.outW);
      const int oy = static_cast<int>((p / s.outW) % s.outH);
      const int64_t b = p / (static_cast<int64_t>(s.outW) * s.outH);
      float* dst = cols + r * K;
      const int ix0 = ox * s.sw - s.left;
      const bool rowInside = s.dw == 1 && ix0 >= 0 && ix0 + s.kw <= s.inW;
      for (int ky = 0; ky < s.kh; ky++) {
        const int iy = oy * s.sh - s.top + ky * s.dh;
        float* tap = dst + static_cast<int64_t>(ky) * s.kw * s.ci;
        if (iy < 0 || iy >= s.inH) {
          std::fill(tap, tap + static_cast<int64_t>(s.kw) * s.ci, 0.0f);
          continue;
        }
        const float* src = x + ((b * s.inH + iy) * s.inW) * s.ci;
        if (rowInside) {
          std::memcpy(tap, src + static_cast<int64_t>(ix0) * s.ci, sizeof(float) * s.kw * s.ci);
          continue;
        }
        for (int kx = 0; kx < s.kw; kx++) {
          const int ix = ix0 + kx * s.dw;
          float* t = tap + static_cast<int64_t>(kx) * s.ci;
          if (ix < 0 || ix >= s.inW) {
            std::fill(t, t + s.ci, 0.0f);
          } else {
            std::memcpy(t, src + static_cast<int64_t>(ix) * s.ci, sizeof(float) * s.ci);
          }
        }
      }
    }
  });
}

// dx += the patches in cols (rows r0 .. r0 + count) put back where they were read;
// threads take slices of the channels, so no two write the same element
void col2imAdd(const ConvShape& s, const float* cols, int64_t r0, int64_t count, float* dx) {
  const int64_t K = static_cast<int64_t>(s.kh) * s.kw * s.ci;
  const int64_t work = count * s.kh * s.kw * s.ci;
  const int64_t grain = work < 2 * kParallelCopy ? s.ci : 8;
  parallelFor(s.ci, grain, [&](int64_t c0, int64_t c1) {
    for (int64_t r = 0; r < count; r++) {
      const int64_t p = r0 + r;
      const int ox = static_cast<int>(p % s.outW);
      const int oy = static_cast<int>((p / s.outW) % s.outH);
      const int64_t b = p / (static_cast<int64_t>(s.outW) * s.outH);
      const float* src = cols + r * K;
      for (int ky = 0; ky < s.kh; ky++) {
        const int iy = oy * s.sh - s.top + ky * s.dh;
        if (iy < 0 || iy >= s.inH) continue;
        float* row = dx + ((b * s.inH + iy) * s.inW) * s.ci;
        for (int kx = 0; kx < s.kw; kx++) {
          const int ix = ox * s.sw - s.left + kx * s.dw;
          if (ix < 0 || ix >= s.inW) continue;
          float* d = row + static_cast<int64_t>(ix) * s.ci;
          const float* t = src + (static_cast<int64_t>(ky) * s.kw + kx) * s.ci;
          for (int64_t c = c0; c < c1; c++) d[c] += t[c];
        }
      }
    }
  });
}
}  // namespace

void conv2d(const ConvShape& s, const float* x, const float* w, float* y) {
  const int64_t rows = s.rows();
  if (rows == 0 || s.co == 0) return;
  if (pointwise(s)) {
    sgemmSized(false, false, static_cast<int>(rows), s.co, s.ci, x, w, 0.0f, y);
    return;
  }
  const int64_t K = static_cast<int64_t>(s.kh) * s.kw * s.ci;
  const int64_t chunk = chunkRows(s, K);
  float* cols = scratch(chunk * K).data();
  for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
    const int64_t count = std::min(chunk, rows - r0);
    im2col(s, x, r0, count, cols);
    sgemmSized(false, false, static_cast<int>(count), s.co, static_cast<int>(K), cols, w, 0.0f, y + r0 * s.co);
  }
}

void conv2dBackpropInput(const ConvShape& s, const float* dy, const float* w, float* dx) {
  const int64_t rows = s.rows();
  std::fill(dx, dx + s.inSize(), 0.0f);
  if (rows == 0 || s.ci == 0) return;
  if (pointwise(s)) {
    sgemmSized(false, true, static_cast<int>(rows), s.ci, s.co, dy, w, 0.0f, dx);
    return;
  }
  const int64_t K = static_cast<int64_t>(s.kh) * s.kw * s.ci;
  const int64_t chunk = chunkRows(s, K);
  float* cols = scratch(chunk * K).data();
  for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
    const int64_t count = std::min(chunk, rows - r0);
    sgemmSized(false, true, static_cast<int>(count), static_cast<int>(K), s.co, dy + r0 * s.co, w, 0.0f, cols);
    col2imAdd(s, cols, r0, count, dx);
  }
}

void conv2dBackpropFilter(const ConvShape& s, const float* x, const float* dy, float* dw) {
  const int64_t rows = s.rows();
  const int64_t K = static_cast<int64_t>(s.kh) * s.kw * s.ci;
  if (rows == 0) {
    std::fill(dw, dw + K * s.co, 0.0f);
    return;
  }
  if (pointwise(s)) {
    sgemmSized(true, false, s.ci, s.co, static_cast<int>(rows), x, dy, 0.0f, dw);
    return;
  }
  const int64_t chunk = chunkRows(s, K);
  float* cols = scratch(chunk * K).data();
  for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
    const int64_t count = std::min(chunk, rows - r0);
    im2col(s, x, r0, count, cols);
    sgemmSized(true, false, static_cast<int>(K), s.co, static_cast<int>(count), cols, dy + r0 * s.co, r0 == 0 ? 0.0f : 1.0f,
          dw);
  }
}
}  // namespace peft
