// N-API entry points. Every operand is a Float32Array plus an element offset
// into it, so that the wasm backend can pass its whole heap (HEAPF32) and the
// offsets of its tensors: the kernels read and write the tensors in place.
// Shapes are checked against the arrays' lengths before any pointer is formed.
// The fused elementwise kernels' entry points are in fused_entry.cc.
#include <node_api.h>

#include <cstdint>
#include <string>
#include <vector>

#include "adam.h"
#include "blas.h"
#include "conv.h"
#include "crash.h"
#include "elementwise.h"
#include "attention_entry.h"
#include "lowrank.h"
#include "orthogonality.h"
#include "bottleneck.h"
#include "reduce.h"
#include "fused_entry.h"
#include "gemm.h"
#include "napi_args.h"
#include "parallel.h"

namespace {

using peft::F32;
using peft::f32;
using peft::fail;
using peft::i32;
using peft::inside;
using peft::isNullish;
using peft::undefinedValue;

// gemm(a, b, c, dims, bias?, aIdx?, bIdx?)
// dims = [batch, m, n, k, transA, transB, aOff, aStride, bOff, bStride, cOff, biasOff]
// matrix i of a starts at aOff + (aIdx ? aIdx[i] : i * aStride), likewise b; c's matrices are packed from cOff.
napi_value Gemm(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc < 4) {
    fail(env, "gemm: expected (a, b, c, dims, bias?, aIdx?, bIdx?)");
    return nullptr;
  }
  F32 a, b, c, bias;
  std::vector<int64_t> d;
  if (!f32(env, argv[0], &a, "gemm a") || !f32(env, argv[1], &b, "gemm b") || !f32(env, argv[2], &c, "gemm c") ||
      !i32(env, argv[3], &d, 12, "gemm dims")) {
    return nullptr;
  }
  const int64_t batch = d[0], m = d[1], n = d[2], k = d[3];
  if (batch < 0 || m < 0 || n < 0 || k < 0) {
    fail(env, "gemm: negative size");
    return nullptr;
  }
  const bool hasBias = argc > 4 && !isNullish(env, argv[4]);
  if (hasBias && (!f32(env, argv[4], &bias, "gemm bias") || !inside(env, bias, d[11], n, "gemm bias"))) return nullptr;
  std::vector<int64_t> aIdx, bIdx;
  if (argc > 5 && !isNullish(env, argv[5]) && !i32(env, argv[5], &aIdx, batch, "gemm aIdx")) return nullptr;
  if (argc > 6 && !isNullish(env, argv[6]) && !i32(env, argv[6], &bIdx, batch, "gemm bIdx")) return nullptr;
  std::vector<int64_t> aOff(batch), bOff(batch);
  for (int64_t i = 0; i < batch; i++) {
    aOff[i] = d[6] + (aIdx.empty() ? i * d[7] : aIdx[i]);
    bOff[i] = d[8] + (bIdx.empty() ? i * d[9] : bIdx[i]);
    if (!inside(env, a, aOff[i], m * k, "gemm a") || !inside(env, b, bOff[i], k * n, "gemm b")) return nullptr;
  }
  if (!inside(env, c, d[10], batch * m * n, "gemm c")) return nullptr;
  if (batch == 0) return undefinedValue(env);
  peft::BatchGemm g{a.data, b.data, c.data + d[10], hasBias ? bias.data + d[11] : nullptr,
                    static_cast<int>(batch), static_cast<int>(m), static_cast<int>(n), static_cast<int>(k),
                    d[4] != 0, d[5] != 0, aOff.data(), bOff.data()};
  peft::batchGemm(g);
  return undefinedValue(env);
}

enum class Conv { kConv, kDepthwise };
using ConvFn = void (*)(const peft::ConvShape&, const float*, const float*, float*);

// conv(in0, in1, out, params), params = [batch, inH, inW, ci, outH, outW, co, kh, kw, sh, sw, dh, dw, top, left,
// off0, off1, off2]; sizes0/1/2 say which of x / filter / y / dx... each operand is
enum class Operand { kX, kFilter, kY };

napi_value RunConv(napi_env env, napi_callback_info info, const char* name, Conv kind, Operand o0, Operand o1,
                   Operand o2, ConvFn fn) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc < 4) {
    fail(env, std::string(name) + ": expected (in0, in1, out, params)");
    return nullptr;
  }
  F32 t[3];
  std::vector<int64_t> p;
  const std::string n(name);
  if (!f32(env, argv[0], &t[0], name) || !f32(env, argv[1], &t[1], name) || !f32(env, argv[2], &t[2], name) ||
      !i32(env, argv[3], &p, 18, name)) {
    return nullptr;
  }
  for (int i = 0; i < 15; i++) {
    if (p[i] < 0 || p[i] > INT32_MAX / 2) {
      fail(env, n + ": bad shape parameter");
      return nullptr;
    }
  }
  peft::ConvShape s{static_cast<int>(p[0]),  static_cast<int>(p[1]),  static_cast<int>(p[2]),
                    static_cast<int>(p[3]),  static_cast<int>(p[4]),  static_cast<int>(p[5]),
                    static_cast<int>(p[6]),  static_cast<int>(p[7]),  static_cast<int>(p[8]),
                    static_cast<int>(p[9]),  static_cast<int>(p[10]), static_cast<int>(p[11]),
                    static_cast<int>(p[12]), static_cast<int>(p[13]), static_cast<int>(p[14])};
  if (s.sh < 1 || s.sw < 1 || s.dh < 1 || s.dw < 1) {
    fail(env, n + ": strides and dilations must be at least 1");
    return nullptr;
  }
  if (kind == Conv::kDepthwise && (s.ci == 0 ? s.co != 0 : s.co % s.ci != 0)) {
    fail(env, n + ": depthwise output channels must be a multiple of the input channels");
    return nullptr;
  }
  const int64_t filterSize = static_cast<int64_t>(s.kh) * s.kw * (kind == Conv::kDepthwise ? s.co : s.ci * static_cast<int64_t>(s.co));
  auto size = [&](Operand o) { return o == Operand::kX ? s.inSize() : o == Operand::kY ? s.outSize() : filterSize; };
  const Operand ops[3] = {o0, o1, o2};
  float* ptr[3];
  for (int i = 0; i < 3; i++) {
    if (!inside(env, t[i], p[15 + i], size(ops[i]), name)) return nullptr;
    ptr[i] = t[i].data + p[15 + i];
  }
  fn(s, ptr[0], ptr[1], ptr[2]);
  return undefinedValue(env);
}

#define CONV_ENTRY(Fn, name, kind, o0, o1, o2, impl)                                                   \
  napi_value Fn(napi_env env, napi_callback_info info) {                                              \
    return RunConv(env, info, name, kind, Operand::o0, Operand::o1, Operand::o2,                      \
                   [](const peft::ConvShape& s, const float* a, const float* b, float* c) { impl(s, a, b, c); }); \
  }

CONV_ENTRY(Conv2d, "conv2d", Conv::kConv, kX, kFilter, kY, peft::conv2d)
CONV_ENTRY(Conv2dBackpropInput, "conv2dBackpropInput", Conv::kConv, kY, kFilter, kX, peft::conv2dBackpropInput)
CONV_ENTRY(Conv2dBackpropFilter, "conv2dBackpropFilter", Conv::kConv, kX, kY, kFilter, peft::conv2dBackpropFilter)
CONV_ENTRY(Depthwise, "depthwise", Conv::kDepthwise, kX, kFilter, kY, peft::depthwise)
CONV_ENTRY(DepthwiseBackpropInput, "depthwiseBackpropInput", Conv::kDepthwise, kY, kFilter, kX,
           peft::depthwiseBackpropInput)
CONV_ENTRY(DepthwiseBackpropFilter, "depthwiseBackpropFilter", Conv::kDepthwise, kX, kY, kFilter,
           peft::depthwiseBackpropFilter)

napi_value SetThreads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int32_t n = 1;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &n) != napi_ok || n < 1) {
    fail(env, "setThreads: expected a positive integer");
    return nullptr;
  }
  peft::setThreadCount(n);
  peft::useBlasThreads(n);
  return undefinedValue(env);
}

void setString(napi_env env, napi_value obj, const char* key, const char* value) {
  napi_value v;
  napi_create_string_utf8(env, value ? value : "", NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, obj, key, v);
}

void setInt(napi_env env, napi_value obj, const char* key, int value) {
  napi_value v;
  napi_create_int32(env, value, &v);
  napi_set_named_property(env, obj, key, v);
}

napi_value Info(napi_env env, napi_callback_info) {
  napi_value obj;
  napi_create_object(env, &obj);
  setString(env, obj, "config", openblas_get_config());
  setString(env, obj, "corename", openblas_get_corename());
  const int parallel = openblas_get_parallel();
  setString(env, obj, "parallel", parallel == 0 ? "sequential" : parallel == 1 ? "pthread" : "openmp");
  setInt(env, obj, "blasThreads", openblas_get_num_threads());
  setInt(env, obj, "threads", peft::threadCount());
  setString(env, obj, "products", peft::productEngine());
  return obj;
}

napi_value Init(napi_env env, napi_value exports) {
  peft::installCrashReport();
  const napi_property_descriptor props[] = {
      {"gemm", nullptr, Gemm, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"conv2d", nullptr, Conv2d, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"conv2dBackpropInput", nullptr, Conv2dBackpropInput, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"conv2dBackpropFilter", nullptr, Conv2dBackpropFilter, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"depthwise", nullptr, Depthwise, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"depthwiseBackpropInput", nullptr, DepthwiseBackpropInput, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"depthwiseBackpropFilter", nullptr, DepthwiseBackpropFilter, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setThreads", nullptr, SetThreads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"info", nullptr, Info, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  peft::defineFusedKernels(env, exports);
  peft::defineAdamKernels(env, exports);
  peft::defineAttentionKernels(env, exports);
  peft::defineLowRankKernels(env, exports);
  peft::defineOrthogonalityKernels(env, exports);
  peft::defineBottleneckKernels(env, exports);
  peft::defineReduceKernels(env, exports);
  peft::defineElementwiseKernels(env, exports);
  peft::setThreadCount(openblas_get_num_threads());
  return exports;
}
}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
