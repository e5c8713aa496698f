// A bottleneck MLP (Medical-SAM-Adapter's Adapter), forward and backward each in one call:
//
//   pre = x W1^T + b1,  y = scale (gelu(pre) W2^T + b2) (+ x with skip)
//
// (scale: Medical-SAM-Adapter's 0.5 on its MLP adapter's output, applied by the
// products' alpha and on b2, instead of a pass over y and one over its gradient)
// x [n, in], W1 [hid, in], b1 [hid], W2 [out, hid], b2 [out] (out = in with skip),
// GELU exact (erf), as the addon's geluForward. pre [n, hid] is an output of the
// forward kept for the backward, which recomputes gelu(pre) from it.
#pragma once
#include <node_api.h>

#include <cstdint>

namespace peft {
struct BottleneckShape {
  int64_t n, in, hid, out;
  bool skip;
  float scale = 1.0f;
};

// y [n, out], pre [n, hid].
void bottleneckForward(const BottleneckShape& s, const float* x, const float* w1, const float* b1, const float* w2,
                       const float* b2, float* y, float* pre);

// The gradients asked for (non-null outputs): dx [n, in], dw1 [hid, in], db1 [hid], dw2 [out, hid], db2 [out].
void bottleneckBackward(const BottleneckShape& s, const float* dy, const float* x, const float* w1, const float* w2,
                        const float* pre, float* dx, float* dw1, float* db1, float* dw2, float* db2);

// Adds bottleneckMlp and bottleneckMlpGrad to the exports.
void defineBottleneckKernels(napi_env env, napi_value exports);
}  // namespace peft
