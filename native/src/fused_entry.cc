// N-API entry points of the fused kernels (fused.h). They share one layout:
//
//   fn(array_0, ..., array_k-1, params, eps?)
//   params = [rows, cols, offset_0, ..., offset_k-1]   (Int32Array)
//
// where operand i is array_i from element offset_i on, and spans rows * cols
// elements, or rows (per-row statistics), or cols (a weight over the last
// axis). Optional operands may be null or undefined (their offset is then
// ignored). Every range is checked against its array before a pointer is formed.
// adam(...) and importanceEma(...) pass their scalars after params as a Float64Array instead of one number.
// transpose(x, y, params) has its own layout (below).
#include "fused_entry.h"

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "fused.h"
#include "napi_args.h"
#include "transpose.h"

namespace peft {
namespace {

enum class Extent { kAll, kRows, kCols };

struct Operand {
  const char* name;
  Extent extent;
  bool optional;
};

constexpr int kMaxOperands = 10;
constexpr int kMaxScalars = 8;

struct Call {
  int64_t rows = 0, cols = 0;
  float* p[kMaxOperands] = {};
  double scalar = 0;
  double scalars[kMaxScalars] = {};
};

// A Float64Array of exactly `count` numbers into `out`.
bool f64s(napi_env env, napi_value v, double* out, size_t count, const std::string& what) {
  bool typed = false;
  napi_typedarray_type type = napi_int8_array;
  size_t length = 0;
  void* data = nullptr;
  if (napi_is_typedarray(env, v, &typed) != napi_ok || !typed ||
      napi_get_typedarray_info(env, v, &type, &length, &data, nullptr, nullptr) != napi_ok ||
      type != napi_float64_array) {
    return fail(env, what + ": expected a Float64Array");
  }
  if (length != count) {
    return fail(env, what + ": wrong length " + std::to_string(length) + ", expected " + std::to_string(count));
  }
  const double* d = static_cast<const double*>(data);
  for (size_t i = 0; i < count; i++) out[i] = d[i];
  return true;
}

using FusedFn = void (*)(const Call&);

// scalarCount > 0: after params comes a Float64Array of that many scalars (hasScalar is then false).
napi_value run(napi_env env, napi_callback_info info, const char* name, std::initializer_list<Operand> spec,
               bool hasScalar, FusedFn fn, size_t scalarCount = 0) {
  const size_t k = spec.size();
  size_t argc = kMaxOperands + 2;
  napi_value argv[kMaxOperands + 2];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  const std::string n(name);
  if (argc < k + 1 + (hasScalar || scalarCount > 0 ? 1 : 0)) {
    fail(env, n + ": expected " + std::to_string(k) + " arrays, params" + (hasScalar ? ", eps" : "") +
                  (scalarCount > 0 ? ", a Float64Array of " + std::to_string(scalarCount) + " scalars" : ""));
    return nullptr;
  }
  std::vector<int64_t> params;
  if (!i32(env, argv[k], &params, static_cast<int64_t>(k) + 2, (n + " params").c_str())) return nullptr;
  Call call;
  call.rows = params[0];
  call.cols = params[1];
  if (call.rows < 0 || call.cols < 0) {
    fail(env, n + ": negative size");
    return nullptr;
  }
  if (hasScalar && napi_get_value_double(env, argv[k + 1], &call.scalar) != napi_ok) {
    fail(env, n + ": expected a number after params");
    return nullptr;
  }
  if (scalarCount > kMaxScalars) {
    fail(env, n + ": too many scalars");
    return nullptr;
  }
  if (scalarCount > 0 && !f64s(env, argv[k + 1], call.scalars, scalarCount, n + " scalars")) return nullptr;
  size_t i = 0;
  for (const Operand& o : spec) {
    const std::string what = n + " " + o.name;
    if (o.optional && isNullish(env, argv[i])) {
      call.p[i] = nullptr;
    } else {
      F32 a;
      if (!f32(env, argv[i], &a, what.c_str())) return nullptr;
      const int64_t size =
          o.extent == Extent::kAll ? call.rows * call.cols : o.extent == Extent::kRows ? call.rows : call.cols;
      const int64_t offset = params[2 + i];
      if (!inside(env, a, offset, size, what.c_str())) return nullptr;
      call.p[i] = a.data + offset;
    }
    i++;
  }
  fn(call);
  return undefinedValue(env);
}

constexpr Extent kAll = Extent::kAll, kRows = Extent::kRows, kCols = Extent::kCols;

// gelu(x, y, [rows, cols, xOff, yOff])
napi_value Gelu(napi_env env, napi_callback_info info) {
  return run(env, info, "gelu", {{"x", kAll, false}, {"y", kAll, false}}, false,
             [](const Call& c) { geluForward(c.rows * c.cols, c.p[0], c.p[1]); });
}

// geluGrad(x, dy, dx, [rows, cols, xOff, dyOff, dxOff])
napi_value GeluGrad(napi_env env, napi_callback_info info) {
  return run(env, info, "geluGrad", {{"x", kAll, false}, {"dy", kAll, false}, {"dx", kAll, false}}, false,
             [](const Call& c) { geluBackward(c.rows * c.cols, c.p[0], c.p[1], c.p[2]); });
}

// layerNorm(x, w?, b?, y, mean, rstd, [rows, cols, offsets...], eps)
napi_value LayerNorm(napi_env env, napi_callback_info info) {
  return run(env, info, "layerNorm",
             {{"x", kAll, false},
              {"weight", kCols, true},
              {"bias", kCols, true},
              {"y", kAll, false},
              {"mean", kRows, false},
              {"rstd", kRows, false}},
             true, [](const Call& c) {
               const LayerNormShape s{c.rows, c.cols, static_cast<float>(c.scalar)};
               layerNormForward(s, c.p[0], c.p[1], c.p[2], c.p[3], c.p[4], c.p[5]);
             });
}

// layerNormGrad(dy, x, mean, rstd, w?, dx, dw?, db?, [rows, cols, offsets...])
napi_value LayerNormGrad(napi_env env, napi_callback_info info) {
  return run(env, info, "layerNormGrad",
             {{"dy", kAll, false},
              {"x", kAll, false},
              {"mean", kRows, false},
              {"rstd", kRows, false},
              {"weight", kCols, true},
              {"dx", kAll, false},
              {"dweight", kCols, true},
              {"dbias", kCols, true}},
             false, [](const Call& c) {
               const LayerNormShape s{c.rows, c.cols, 0.0f};
               layerNormBackward(s, c.p[0], c.p[1], c.p[2], c.p[3], c.p[4], c.p[5], c.p[6], c.p[7]);
             });
}

// channelAffine(x, scale, shift, y, [rows, cols, xOff, scaleOff, shiftOff, yOff])
napi_value ChannelAffine(napi_env env, napi_callback_info info) {
  return run(env, info, "channelAffine", {{"x", kAll, false}, {"scale", kCols, false}, {"shift", kCols, false}, {"y", kAll, false}},
             false, [](const Call& c) { channelAffine(c.rows, c.cols, c.p[0], c.p[1], c.p[2], c.p[3]); });
}

// softmax(x, y, [rows, cols, xOff, yOff])
napi_value Softmax(napi_env env, napi_callback_info info) {
  return run(env, info, "softmax", {{"x", kAll, false}, {"y", kAll, false}}, false,
             [](const Call& c) { softmaxForward(c.rows, c.cols, c.p[0], c.p[1]); });
}

// softmaxGrad(y, dy, dx, [rows, cols, yOff, dyOff, dxOff])
napi_value SoftmaxGrad(napi_env env, napi_callback_info info) {
  return run(env, info, "softmaxGrad", {{"y", kAll, false}, {"dy", kAll, false}, {"dx", kAll, false}}, false,
             [](const Call& c) { softmaxBackward(c.rows, c.cols, c.p[0], c.p[1], c.p[2]); });
}
// adam(p, g, m, v, pOut, mOut, vOut, [rows, cols, offsets...],
//      Float64Array [beta1, 1 - beta1, beta2, 1 - beta2, sqrt(bc2), eps, lr / bc1])
// (each scalar rounded to float32 here, as tfjs rounds a JS number to a scalar tensor)
napi_value Adam(napi_env env, napi_callback_info info) {
  return run(env, info, "adam",
             {{"p", kAll, false},
              {"g", kAll, false},
              {"m", kAll, false},
              {"v", kAll, false},
              {"pOut", kAll, false},
              {"mOut", kAll, false},
              {"vOut", kAll, false}},
             false,
             [](const Call& c) {
               const double* d = c.scalars;
               const AdamScalars s{static_cast<float>(d[0]), static_cast<float>(d[1]), static_cast<float>(d[2]),
                                   static_cast<float>(d[3]), static_cast<float>(d[4]), static_cast<float>(d[5]),
                                   static_cast<float>(d[6])};
               adamUpdate(c.rows * c.cols, c.p[0], c.p[1], c.p[2], c.p[3], c.p[4], c.p[5], c.p[6], s);
             },
             7);
}

// importanceEma(p, g, ema?, unc?, emaOut, uncOut, [rows, cols, offsets...],
//               Float64Array [beta1, 1 - beta1, beta2, 1 - beta2])
// (each scalar rounded to float32 here; a null ema or unc is the first update's zeros)
napi_value ImportanceEma(napi_env env, napi_callback_info info) {
  return run(env, info, "importanceEma",
             {{"p", kAll, false},
              {"g", kAll, false},
              {"ema", kAll, true},
              {"unc", kAll, true},
              {"emaOut", kAll, false},
              {"uncOut", kAll, false}},
             false,
             [](const Call& c) {
               const double* d = c.scalars;
               const ImportanceScalars s{static_cast<float>(d[0]), static_cast<float>(d[1]), static_cast<float>(d[2]),
                                         static_cast<float>(d[3])};
               importanceEma(c.rows * c.cols, c.p[0], c.p[1], c.p[2], c.p[3], c.p[4], c.p[5], s);
             },
             4);
}

// transpose(x, y, [rank, xOff, yOff, shape_0..shape_rank-1, perm_0..perm_rank-1])
napi_value Transpose(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc < 3) {
    fail(env, "transpose: expected (x, y, params)");
    return nullptr;
  }
  F32 x, y;
  std::vector<int64_t> p;
  if (!f32(env, argv[0], &x, "transpose x") || !f32(env, argv[1], &y, "transpose y") ||
      !i32(env, argv[2], &p, -1, "transpose params")) {
    return nullptr;
  }
  const int64_t rank = p.empty() ? -1 : p[0];
  if (rank < 0 || rank > kMaxTransposeRank || static_cast<int64_t>(p.size()) != 3 + 2 * rank) {
    fail(env, "transpose: params must be [rank <= 8, xOff, yOff, shape..., perm...]");
    return nullptr;
  }
  const int64_t* shape = p.data() + 3;
  const int64_t* perm = shape + rank;
  bool seen[kMaxTransposeRank] = {};
  bool empty = false;
  for (int64_t d = 0; d < rank; d++) {
    if (shape[d] < 0 || perm[d] < 0 || perm[d] >= rank || seen[perm[d]]) {
      fail(env, "transpose: negative size, or perm is not a permutation");
      return nullptr;
    }
    seen[perm[d]] = true;
    empty = empty || shape[d] == 0;
  }
  int64_t size = empty ? 0 : 1;
  for (int64_t d = 0; d < rank && size > 0; d++) {
    size *= shape[d];  // < 2^31 times at most x.length < 2^53: no overflow before the check
    if (size > x.length) {
      fail(env, "transpose: x is smaller than its shape");
      return nullptr;
    }
  }
  if (!inside(env, x, p[1], size, "transpose x") || !inside(env, y, p[2], size, "transpose y")) return nullptr;
  if (size > 0) transpose(static_cast<int>(rank), shape, perm, x.data + p[1], y.data + p[2]);
  return undefinedValue(env);
}
}  // namespace

void defineFusedKernels(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"gelu", nullptr, Gelu, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"geluGrad", nullptr, GeluGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"layerNorm", nullptr, LayerNorm, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"layerNormGrad", nullptr, LayerNormGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"softmax", nullptr, Softmax, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"channelAffine", nullptr, ChannelAffine, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"softmaxGrad", nullptr, SoftmaxGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"transpose", nullptr, Transpose, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"adam", nullptr, Adam, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"importanceEma", nullptr, ImportanceEma, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}

}  // namespace peft
