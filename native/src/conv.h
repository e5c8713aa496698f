#pragma once
#include <cstdint>

namespace peft {
// One NHWC convolution: x [batch, inH, inW, ci], filter [kh, kw, ci, co] (or
// [kh, kw, ci, mult] for depthwise, co = ci * mult), y [batch, outH, outW, co];
// output (oy, ox), tap (ky, kx) reads input (oy * sh - top + ky * dh, ox * sw - left + kx * dw).
struct ConvShape {
  int batch, inH, inW, ci, outH, outW, co, kh, kw, sh, sw, dh, dw, top, left;
  int64_t inSize() const { return static_cast<int64_t>(batch) * inH * inW * ci; }
  int64_t outSize() const { return static_cast<int64_t>(batch) * outH * outW * co; }
  int64_t rows() const { return static_cast<int64_t>(batch) * outH * outW; }
};

void conv2d(const ConvShape& s, const float* x, const float* w, float* y);
void conv2dBackpropInput(const ConvShape& s, const float* dy, const float* w, float* dx);
void conv2dBackpropFilter(const ConvShape& s, const float* x, const float* dy, float* dw);

void depthwise(const ConvShape& s, const float* x, const float* w, float* y);
void depthwiseBackpropInput(const ConvShape& s, const float* dy, const float* w, float* dx);
void depthwiseBackpropFilter(const ConvShape& s, const float* x, const float* dy, float* dw);
}  // namespace peft
