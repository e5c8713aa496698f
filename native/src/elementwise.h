// Elementwise binary kernels in float32 (Add, Sub, Multiply, RealDiv) for the
// broadcasts of a training step: operands of the output's shape, a scalar, or
// a row repeated over the output's leading axes (a bias [C] over [B, H, W, C],
// a bias [heads, n, n] over [windows, heads, n, n]). Each output element is
// one IEEE operation on two float32s, so the results are bit-identical to
// tfjs's cpu and wasm kernels (nothing to reorder or contract).
#pragma once
#include <node_api.h>

#include <cstdint>

namespace peft {
enum class BinaryOp { kAdd = 0, kSub = 1, kMul = 2, kDiv = 3 };
// How an operand is read for output element i = o * inner + j: at i (the
// output's shape), at j (a row of `inner` elements), or at 0 (a scalar).
enum class BinaryOperand { kFull = 0, kRow = 1, kScalar = 2 };

// y[o * inner + j] = a op b for o < outer, j < inner; split over the addon's threads when large.
void binary(BinaryOp op, int64_t outer, int64_t inner, const float* a, BinaryOperand aMode, const float* b, BinaryOperand bMode,
            float* y);

// Adds binary(a, b, y, [op, outer, inner, aMode, bMode, aOff, bOff, yOff]) to the exports.
void defineElementwiseKernels(napi_env env, napi_value exports);
}  // namespace peft
