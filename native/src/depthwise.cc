// Depthwise convolution (filter [kh, kw, ci, mult], co = ci * mult) and both
// of its gradients as direct loops, channels innermost so that the compiler
// vectorises them; each row function is also compiled for Haswell (AVX2, FMA)
// and picked at load time when the CPU has it. Rows of the output (forward,
// filter gradient) or of the input (input gradient, written as a gather so
// that no two threads write the same element) are split over the threads.
#include <algorithm>
#include <map>
#include <mutex>
#include <vector>

#include "conv.h"
#include "parallel.h"
#include "simd.h"

namespace peft {
namespace {

// y row (b, oy): y[b, oy, ox, c * mult + q] = sum_taps x[b, iy, ix, c] * w[ky, kx, c * mult + q]
PEFT_CLONES void forwardRow(const ConvShape& s, const float* __restrict x, const float* __restrict w,
                            float* __restrict y, int64_t b, int oy) {
  const int mult = s.co / s.ci;
  for (int ox = 0; ox < s.outW; ox++) {
    float* yv = y + ((b * s.outH + oy) * s.outW + ox) * s.co;
    std::fill(yv, yv + s.co, 0.0f);
    for (int ky = 0; ky < s.kh; ky++) {
      const int iy = oy * s.sh - s.top + ky * s.dh;
      if (iy < 0 || iy >= s.inH) continue;
      for (int kx = 0; kx < s.kw; kx++) {
        const int ix = ox * s.sw - s.left + kx * s.dw;
        if (ix < 0 || ix >= s.inW) continue;
        const float* xv = x + ((b * s.inH + iy) * s.inW + ix) * s.ci;
        const float* wv = w + (static_cast<int64_t>(ky) * s.kw + kx) * s.co;
        if (mult == 1) {
          for (int c = 0; c < s.ci; c++) yv[c] += xv[c] * wv[c];
        } else {
          for (int c = 0; c < s.ci; c++) {
            const float xc = xv[c];
            for (int q = 0; q < mult; q++) yv[c * mult + q] += xc * wv[c * mult + q];
          }
        }
      }
    }
  }
}

// dx row (b, iy): dx[b, iy, ix, c] = sum over the outputs that read it of dy . w
PEFT_CLONES void inputGradRow(const ConvShape& s, const float* __restrict dy, const float* __restrict w,
                              float* __restrict dx, int64_t b, int iy) {
  const int mult = s.co / s.ci;
  for (int ix = 0; ix < s.inW; ix++) {
    float* d = dx + ((b * s.inH + iy) * s.inW + ix) * s.ci;
    std::fill(d, d + s.ci, 0.0f);
    for (int ky = 0; ky < s.kh; ky++) {
      const int ty = iy + s.top - ky * s.dh;
      if (ty < 0 || ty % s.sh != 0) continue;
      const int oy = ty / s.sh;
      if (oy >= s.outH) continue;
      for (int kx = 0; kx < s.kw; kx++) {
        const int tx = ix + s.left - kx * s.dw;
        if (tx < 0 || tx % s.sw != 0) continue;
        const int ox = tx / s.sw;
        if (ox >= s.outW) continue;
        const float* g = dy + ((b * s.outH + oy) * s.outW + ox) * s.co;
        const float* wv = w + (static_cast<int64_t>(ky) * s.kw + kx) * s.co;
        if (mult == 1) {
          for (int c = 0; c < s.ci; c++) d[c] += g[c] * wv[c];
        } else {
          for (int c = 0; c < s.ci; c++) {
            float acc = 0.0f;
            for (int q = 0; q < mult; q++) acc += g[c * mult + q] * wv[c * mult + q];
            d[c] += acc;
          }
        }
      }
    }
  }
}

// acc[ky, kx, c * mult + q] += sum over output row (b, oy) of x[b, iy, ix, c] * dy[b, oy, ox, c * mult + q]
PEFT_CLONES void filterGradRow(const ConvShape& s, const float* __restrict x, const float* __restrict dy,
                               float* __restrict acc, int64_t b, int oy) {
  const int mult = s.co / s.ci;
  for (int ky = 0; ky < s.kh; ky++) {
    const int iy = oy * s.sh - s.top + ky * s.dh;
    if (iy < 0 || iy >= s.inH) continue;
    for (int kx = 0; kx < s.kw; kx++) {
      float* a = acc + (static_cast<int64_t>(ky) * s.kw + kx) * s.co;
      for (int ox = 0; ox < s.outW; ox++) {
        const int ix = ox * s.sw - s.left + kx * s.dw;
        if (ix < 0 || ix >= s.inW) continue;
        const float* xv = x + ((b * s.inH + iy) * s.inW + ix) * s.ci;
        const float* g = dy + ((b * s.outH + oy) * s.outW + ox) * s.co;
        if (mult == 1) {
          for (int c = 0; c < s.ci; c++) a[c] += xv[c] * g[c];
        } else {
          for (int c = 0; c < s.ci; c++) {
            const float xc = xv[c];
            for (int q = 0; q < mult; q++) a[c * mult + q] += xc * g[c * mult + q];
          }
        }
      }
    }
  }
}

// rows per thread at least: ~256k multiply-adds (~100 us), well above the cost of a thread
int64_t rowGrain(int64_t perRow) { return std::max<int64_t>(1, (int64_t{1} << 18) / std::max<int64_t>(1, perRow)); }
}  // namespace

void depthwise(const ConvShape& s, const float* x, const float* w, float* y) {
  const int64_t perRow = static_cast<int64_t>(s.outW) * s.kh * s.kw * s.co;
  parallelFor(static_cast<int64_t>(s.batch) * s.outH, rowGrain(perRow), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++) forwardRow(s, x, w, y, r / s.outH, static_cast<int>(r % s.outH));
  });
}

void depthwiseBackpropInput(const ConvShape& s, const float* dy, const float* w, float* dx) {
  const int64_t perRow = static_cast<int64_t>(s.inW) * s.kh * s.kw * s.co;
  parallelFor(static_cast<int64_t>(s.batch) * s.inH, rowGrain(perRow), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++) inputGradRow(s, dy, w, dx, r / s.inH, static_cast<int>(r % s.inH));
  });
}

void depthwiseBackpropFilter(const ConvShape& s, const float* x, const float* dy, float* dw) {
  const int64_t size = static_cast<int64_t>(s.kh) * s.kw * s.co;
  // one accumulator per part, summed in the parts' order (deterministic)
  std::map<int64_t, std::vector<float>> parts;
  std::mutex merge;
  const int64_t perRow = static_cast<int64_t>(s.outW) * s.kh * s.kw * s.co;
  parallelFor(static_cast<int64_t>(s.batch) * s.outH, rowGrain(perRow), [&](int64_t begin, int64_t end) {
    std::vector<float> acc(size, 0.0f);
    for (int64_t r = begin; r < end; r++) filterGradRow(s, x, dy, acc.data(), r / s.outH, static_cast<int>(r % s.outH));
    std::lock_guard<std::mutex> lock(merge);
    parts.emplace(begin, std::move(acc));
  });
  std::fill(dw, dw + size, 0.0f);
  for (const auto& part : parts) {
    for (int64_t i = 0; i < size; i++) dw[i] += part.second[i];
  }
}
}  // namespace peft
