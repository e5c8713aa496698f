// Elementwise binary kernels (elementwise.h). The output is walked in order
// as runs of at most `inner` elements (a run never crosses a row, so a row
// operand is read contiguously from its index j), each run one vectorised
// loop: vector op vector, scalar op vector or vector op scalar. One IEEE
// operation per element in the operands' order (a op b), so no reordering or
// fused multiply-add can change a result. Split over the threads by ranges
// of the output from 2 * kGrain elements.
#include "elementwise.h"

#include <algorithm>
#include <string>
#include <vector>

#include "napi_args.h"
#include "parallel.h"
#include "simd.h"

namespace peft {
namespace {

// Output elements per part at least (below 2 * kGrain one thread does it all): two threads win from
// about 16k elements a part with a spinning worker and lose below it (2-vCPU Xeon, 2026-12-05).
constexpr int64_t kGrain = int64_t{1} << 15;

template <BinaryOp Op>
PEFT_INLINE float apply(float a, float b) {
  if constexpr (Op == BinaryOp::kAdd) return a + b;
  if constexpr (Op == BinaryOp::kSub) return a - b;
  if constexpr (Op == BinaryOp::kMul) return a * b;
  return a / b;
}

struct Binary {
  int64_t inner;
  const float* a;
  BinaryOperand aMode;
  const float* b;
  BinaryOperand bMode;
  float* y;
};

PEFT_INLINE const float* at(const float* p, BinaryOperand mode, int64_t i, int64_t j) {
  return mode == BinaryOperand::kFull ? p + i : mode == BinaryOperand::kRow ? p + j : p;
}

// output elements [begin, end)
template <BinaryOp Op>
PEFT_INLINE void runRange(const Binary& g, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end;) {
    const int64_t j = i % g.inner;
    const int64_t len = std::min(g.inner - j, end - i);
    const float* a = at(g.a, g.aMode, i, j);
    const float* b = at(g.b, g.bMode, i, j);
    float* y = g.y + i;
    if (g.aMode == BinaryOperand::kScalar && g.bMode != BinaryOperand::kScalar) {
      const float s = *a;
      for (int64_t k = 0; k < len; k++) y[k] = apply<Op>(s, b[k]);
    } else if (g.bMode == BinaryOperand::kScalar && g.aMode != BinaryOperand::kScalar) {
      const float s = *b;
      for (int64_t k = 0; k < len; k++) y[k] = apply<Op>(a[k], s);
    } else if (g.aMode == BinaryOperand::kScalar) {
      for (int64_t k = 0; k < len; k++) y[k] = apply<Op>(*a, *b);
    } else {
      for (int64_t k = 0; k < len; k++) y[k] = apply<Op>(a[k], b[k]);
    }
    i += len;
  }
}

// One clone set per operation (GCC's target_clones does not take templates).
PEFT_CLONES void addRange(const Binary& g, int64_t b, int64_t e) { runRange<BinaryOp::kAdd>(g, b, e); }
PEFT_CLONES void subRange(const Binary& g, int64_t b, int64_t e) { runRange<BinaryOp::kSub>(g, b, e); }
PEFT_CLONES void mulRange(const Binary& g, int64_t b, int64_t e) { runRange<BinaryOp::kMul>(g, b, e); }
PEFT_CLONES void divRange(const Binary& g, int64_t b, int64_t e) { runRange<BinaryOp::kDiv>(g, b, e); }

int64_t operandSize(BinaryOperand mode, int64_t outer, int64_t inner) {
  return mode == BinaryOperand::kFull ? outer * inner : mode == BinaryOperand::kRow ? inner : 1;
}

// binary(a, b, y, [op, outer, inner, aMode, bMode, aOff, bOff, yOff])
napi_value Binary_(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc < 4) {
    fail(env, "binary: expected (a, b, y, params)");
    return nullptr;
  }
  F32 a, b, y;
  std::vector<int64_t> p;
  if (!f32(env, argv[0], &a, "binary a") || !f32(env, argv[1], &b, "binary b") || !f32(env, argv[2], &y, "binary y") ||
      !i32(env, argv[3], &p, 8, "binary params")) {
    return nullptr;
  }
  const int64_t outer = p[1], inner = p[2];
  if (p[0] < 0 || p[0] > 3 || p[3] < 0 || p[3] > 2 || p[4] < 0 || p[4] > 2) {
    fail(env, "binary: bad operation or operand mode");
    return nullptr;
  }
  if (outer < 0 || inner < 0) {
    fail(env, "binary: negative size");
    return nullptr;
  }
  if (inner > 0 && outer > y.length / inner) {
    fail(env, "binary y: outside the array");
    return nullptr;
  }
  const auto aMode = static_cast<BinaryOperand>(p[3]);
  const auto bMode = static_cast<BinaryOperand>(p[4]);
  const int64_t size = outer * inner;
  if (!inside(env, y, p[7], size, "binary y")) return nullptr;
  if (size == 0) return undefinedValue(env);
  if (!inside(env, a, p[5], operandSize(aMode, outer, inner), "binary a") ||
      !inside(env, b, p[6], operandSize(bMode, outer, inner), "binary b")) {
    return nullptr;
  }
  binary(static_cast<BinaryOp>(p[0]), outer, inner, a.data + p[5], aMode, b.data + p[6], bMode, y.data + p[7]);
  return undefinedValue(env);
}
}  // namespace

void binary(BinaryOp op, int64_t outer, int64_t inner, const float* a, BinaryOperand aMode, const float* b, BinaryOperand bMode,
            float* y) {
  const int64_t size = outer * inner;
  if (size == 0) return;
  const Binary g{inner, a, aMode, b, bMode, y};
  auto fn = op == BinaryOp::kAdd ? addRange : op == BinaryOp::kSub ? subRange : op == BinaryOp::kMul ? mulRange : divRange;
  parallelFor(size, kGrain, [&](int64_t begin, int64_t end) { fn(g, begin, end); });
}

void defineElementwiseKernels(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"binary", nullptr, Binary_, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}

}  // namespace peft
