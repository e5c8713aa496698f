// A linear layer with a low-rank update of some of its output groups (LoRA,
// loralib's MergedLinear), forward and backward each in one call:
//
//   y = x W^T + bias + scaling * [per enabled group g, its j-th slot] ((x A_j^T) e_j) B_j^T
//
// x [n, in], W [out, in], bias [out], A [r*k, in], B [gw*k, r] for k enabled of
// G groups of gw = out / G output columns each; e [r*k] an optional scale of
// each rank (AdaLoRA's singular values: A*E without forming it; absent = 1);
// t = x A^T [n, r*k] (unscaled by e) is an output of the forward kept for the backward.
#pragma once
#include <node_api.h>

#include <cstdint>
#include <vector>

namespace peft {
struct LowRankShape {
  int64_t n, in, out, r, groups;
  std::vector<bool> enabled;  // one per group
  float scaling;
};

// y [n, out], t [n, r*k]; bias and e may be null.
void lowRankForward(const LowRankShape& s, const float* x, const float* w, const float* bias, const float* a,
                    const float* b, const float* e, float* y, float* t);

// The gradients asked for (non-null outputs): dx [n, in], da [r*k, in], db [gw*k, r], dw [out, in], dbias [out],
// de [r*k] (only with e).
void lowRankBackward(const LowRankShape& s, const float* dy, const float* x, const float* w, const float* a,
                     const float* b, const float* e, const float* t, float* dx, float* da, float* db, float* dw,
                     float* dbias, float* de);

// Adds lowRankLinear and lowRankLinearGrad to the exports.
void defineLowRankKernels(napi_env env, napi_value exports);
}  // namespace peft
