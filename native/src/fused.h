// Fused elementwise and row kernels for the training step (issue 7): each
// replaces a chain of tfjs kernels (one pass over memory each) by one or two
// passes. Rows are the last axis of a tensor; `rows` x `cols` row-major.
#pragma once
#include <cstdint>

namespace peft {

// Exact GELU, y = 0.5 x (1 + erf(x / sqrt 2)).
void geluForward(int64_t n, const float* x, float* y);
// dx = dy * (Phi(x) + x phi(x)), from x alone (nothing saved but x).
void geluBackward(int64_t n, const float* x, const float* dy, float* dx);

struct LayerNormShape {
  int64_t rows, cols;
  float eps;
};
// y = (x - mean) * rstd * w + b over each row (w, b may be null); writes each
// row's mean and rstd = 1 / sqrt(var + eps) (biased variance) for the backward.
void layerNormForward(const LayerNormShape& s, const float* x, const float* w, const float* b, float* y, float* mean,
                      float* rstd);
// dx, and dw = sum over rows of dy * xhat, db = sum over rows of dy (each may be null).
void layerNormBackward(const LayerNormShape& s, const float* dy, const float* x, const float* mean, const float* rstd,
                       const float* w, float* dx, float* dw, float* db);

// y = x * scale + shift over each row (scale, shift [cols]): a Multiply then an Add, bit-identical (affine.cc).
void channelAffine(int64_t rows, int64_t cols, const float* x, const float* scale, const float* shift, float* y);

// Softmax over each row, and its gradient dx = dy * y - sum(dy * y) * y.
void softmaxForward(int64_t rows, int64_t cols, const float* x, float* y);
void softmaxBackward(int64_t rows, int64_t cols, const float* y, const float* dy, float* dx);
// The same on the calling thread only (x, y, dy, dx distinct).
void softmaxRowsSerial(int64_t rows, int64_t cols, const float* x, float* y);
void softmaxGradRowsSerial(int64_t rows, int64_t cols, const float* y, const float* dy, float* dx);

// Adam's update of one parameter (src/core/train/adam.ts), in float32 with one
// rounding per operation in the composite form's order and no fused multiply-adds,
// so bit-identical to it:
//   m' = m b1 + g (1 - b1),  v' = v b2 + (g g)(1 - b2),
//   p' = p - (m' / (sqrt(v') / sqrt(bc2) + eps)) (lr / bc1).
// The scalars are given rounded to float32. The outputs may not overlap the inputs.
struct AdamScalars {
  float beta1, oneMinusBeta1, beta2, oneMinusBeta2, sqrtBc2, eps, stepSize;  // stepSize = lr / bc1
};
void adamUpdate(int64_t n, const float* p, const float* g, const float* m, const float* v, float* pOut, float* mOut,
                float* vOut, const AdamScalars& s);

// AdaLoRA's importance averages of one parameter (src/core/train/importance.ts),
// bit-identical to the composite form there in the same way:
//   ipt = |p g|,  ema' = ema b1 + ipt (1 - b1),  unc' = unc b2 + |ipt - ema'| (1 - b2).
// ema and unc may be null (the first update: zeros). The scalars are given rounded to
// float32. The outputs may not overlap the inputs.
struct ImportanceScalars {
  float beta1, oneMinusBeta1, beta2, oneMinusBeta2;
};
void importanceEma(int64_t n, const float* p, const float* g, const float* ema, const float* unc, float* emaOut,
                   float* uncOut, const ImportanceScalars& s);

// Items per thread at least: ~64k elements (tens of microseconds), well above
// what starting a thread costs.
constexpr int64_t kElementGrain = int64_t{1} << 16;
inline int64_t rowGrainFor(int64_t cols) { return cols > 0 && cols < kElementGrain ? kElementGrain / cols : 1; }

}  // namespace peft
