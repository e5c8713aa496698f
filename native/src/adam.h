// Adam over many parameters in one call (PyTorch's multi-tensor "foreach" Adam):
// the update of adam.cc (fused.h's adamUpdate, bit-identical to the composite
// form) for every trainable tensor of a step, their elements split over the
// pool as one range. A step of the README's main job has 138 trainable tensors,
// most of them small (LoRA factors, biases): one kernel call each was 138 trips
// through the tfjs engine and the addon, and as many pool dispatches.
#pragma once
#include <node_api.h>

#include <cstdint>

#include "fused.h"

namespace peft {
// One tensor of a multi-tensor update: n elements of p, g, m, v in, pOut, mOut, vOut out
// (the outputs may not overlap the inputs).
struct AdamTensor {
  int64_t n;
  const float *p, *g, *m, *v;
  float *pOut, *mOut, *vOut;
};
void adamUpdateMulti(const AdamTensor* tensors, int64_t count, const AdamScalars& s);

// Adds adamMulti(arrays, params, scalars) to the exports:
//   arrays  = [p_0, g_0, m_0, v_0, pOut_0, mOut_0, vOut_0, p_1, ...]  (7 Float32Arrays a tensor)
//   params  = Int32Array [count, then per tensor: n, the 7 offsets]
//   scalars = Float64Array [beta1, 1 - beta1, beta2, 1 - beta2, sqrt(bc2), eps, lr / bc1] (rounded to float32 here)
void defineAdamKernels(napi_env env, napi_value exports);
}  // namespace peft
