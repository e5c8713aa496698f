// Sums over a contiguous block of axes (issue 7): tfjs's Sum kernel on wasm
// transposes the reduced axes to the end and sums them one element at a time,
// which made the bias gradients (a sum over every token) one of the slowest
// kernels of a training step.
#pragma once
#include <node_api.h>

#include <cstdint>

namespace peft {
// x viewed as [outer, reduced, inner] → y [outer, inner].
void sumMiddle(int64_t outer, int64_t reduced, int64_t inner, const float* x, float* y);

// Adds sum(x, y, [outer, reduced, inner, xOff, yOff]) to the exports.
void defineReduceKernels(napi_env env, napi_value exports);
}  // namespace peft
