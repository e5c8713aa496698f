// The low-rank linear layer (lowrank.h) on the addon's products: every product is one
// strided sgemm reading and writing the operands in place (a group's columns
// of dy, a slot's columns of t), with alpha = scaling where the update is
// scaled: no slice, concat or zeros. The two updates of inner size r (the
// rank-r term of y, with the bias, and that of dx) are one pass each over
// the rows of y and dx, split over the threads: as products they ran on one
// thread and cost more than the pass.
//
// N-API entry points:
//   lowRankLinear(x, w, bias, a, b, e, y, t, params, scaling)
//     params = [n, in, out, r, G, xOff, wOff, biasOff, aOff, bOff, eOff, yOff, tOff, enabled x G]
//   lowRankLinearGrad(dy, x, w, a, b, e, t, dx, da, db, dw, dbias, de, params, scaling)
//     params = [n, in, out, r, G, dyOff, xOff, wOff, aOff, bOff, eOff, tOff, dxOff, daOff, dbOff, dwOff, dbiasOff,
//               deOff, enabled x G]
// bias, the rank scale e [r*k] and the gradients are optional (null); every range is checked against
// its array before a pointer into it is formed.
#include "lowrank.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "blas.h"
#include "napi_args.h"
#include "parallel.h"
#include "simd.h"

namespace peft {
namespace {

// C[m, n] = alpha op(A) op(B) + beta C with leading dimensions, row-major, on
// the addon's product engine (gemm.cc: oneDNN or OpenBLAS by shape, all threads
// from kThreadedWork multiply-adds, else one), as every other product of a step:
// two engines' thread pools spinning in turn would fight over the cores.
void gemm(bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  sgemmStrided(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// (group, slot) of each enabled group, in order.
std::vector<std::pair<int64_t, int64_t>> slots(const LowRankShape& s) {
  std::vector<std::pair<int64_t, int64_t>> out;
  for (int64_t g = 0; g < s.groups; g++) {
    if (s.enabled[g]) out.push_back({g, static_cast<int64_t>(out.size())});
  }
  return out;
}

// m [rows, cols] with column c scaled by e[c], as a new buffer.
std::vector<float> scaledColumns(const float* m, const float* e, int64_t rows, int64_t cols) {
  std::vector<float> out(static_cast<size_t>(rows * cols));
  for (int64_t i = 0; i < rows; i++) {
    const float* src = m + i * cols;
    float* dst = out.data() + i * cols;
    for (int64_t c = 0; c < cols; c++) dst[c] = src[c] * e[c];
  }
  return out;
}

// Rows a part of a row pass takes at least: about 32k elements of the output.
int64_t rowGrain(int64_t cols) { return std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(1, cols)); }

// The forward's update of rows [r0, r1) of y (holding x W^T), in one pass over
// them: y[i, :] += bias, then each enabled group's columns
// y[i, g] += scaling * (h[i, j] . B_j[c, :]) (bt: B_j transposed, [k][r][gw]),
// the rank-r sum made in acc (gw floats) first.
PEFT_CLONES void forwardRows(const LowRankShape& s, const std::vector<std::pair<int64_t, int64_t>>& sl, int64_t rk,
                             const float* __restrict bias, const float* __restrict h, const float* __restrict bt,
                             float* __restrict y, int64_t r0, int64_t r1) {
  const int64_t gw = s.out / s.groups;
  std::vector<float> acc(static_cast<size_t>(gw));
  for (int64_t i = r0; i < r1; i++) {
    float* yi = y + i * s.out;
    if (bias) {
      for (int64_t c = 0; c < s.out; c++) yi[c] = yi[c] + bias[c];
    }
    for (const auto& [g, j] : sl) {
      const float* hi = h + i * rk + j * s.r;
      const float* btj = bt + j * s.r * gw;
      float* a = acc.data();
      std::fill(a, a + gw, 0.0f);
      for (int64_t q = 0; q < s.r; q++) {
        const float hq = hi[q];
        const float* row = btj + q * gw;
        for (int64_t c = 0; c < gw; c++) a[c] += hq * row[c];
      }
      float* yg = yi + g * gw;
      for (int64_t c = 0; c < gw; c++) yg[c] = yg[c] + s.scaling * a[c];
    }
  }
}

// dx[i, :] += scaling * (u[i, :] A) for rows [r0, r1) (dx holding dy W), the
// sum over the r*k ranks made in acc (in floats) first.
PEFT_CLONES void inputGradRows(int64_t in, int64_t rk, float scaling, const float* __restrict u, const float* __restrict a,
                               float* __restrict dx, int64_t r0, int64_t r1) {
  std::vector<float> acc(static_cast<size_t>(in));
  for (int64_t i = r0; i < r1; i++) {
    float* s = acc.data();
    std::fill(s, s + in, 0.0f);
    const float* ui = u + i * rk;
    for (int64_t c = 0; c < rk; c++) {
      const float uc = ui[c];
      const float* row = a + c * in;
      for (int64_t k = 0; k < in; k++) s[k] += uc * row[k];
    }
    float* di = dx + i * in;
    for (int64_t k = 0; k < in; k++) di[k] = di[k] + scaling * s[k];
  }
}
}  // namespace

void lowRankForward(const LowRankShape& s, const float* x, const float* w, const float* bias, const float* a,
                    const float* b, const float* e, float* y, float* t) {
  const auto sl = slots(s);
  const int64_t rk = s.r * static_cast<int64_t>(sl.size());
  const int64_t gw = s.out / s.groups;
  gemm(false, true, s.n, s.out, s.in, 1.0f, x, s.in, w, s.in, 0.0f, y, s.out);
  gemm(false, true, s.n, rk, s.in, 1.0f, x, s.in, a, s.in, 0.0f, t, rk);
  // with a rank scale e, the update reads t e (t itself is kept: the gradient of e needs it)
  std::vector<float> te;
  const float* h = t;
  if (e) {
    te = scaledColumns(t, e, s.n, rk);
    h = te.data();
  }
  // the bias and the rank-r update in one pass over y's rows, over the threads
  // (as products of inner size r they were each a pass of their own on one thread)
  std::vector<float> bt(static_cast<size_t>(rk * gw));
  for (const auto& [g, j] : sl) {
    (void)g;
    for (int64_t c = 0; c < gw; c++) {
      for (int64_t q = 0; q < s.r; q++) bt[(j * s.r + q) * gw + c] = b[(j * gw + c) * s.r + q];
    }
  }
  parallelFor(s.n, rowGrain(s.out), [&](int64_t r0, int64_t r1) { forwardRows(s, sl, rk, bias, h, bt.data(), y, r0, r1); });
}

void lowRankBackward(const LowRankShape& s, const float* dy, const float* x, const float* w, const float* a,
                     const float* b, const float* e, const float* t, float* dx, float* da, float* db, float* dw,
                     float* dbias, float* de) {
  const auto sl = slots(s);
  const int64_t rk = s.r * static_cast<int64_t>(sl.size());
  const int64_t gw = s.out / s.groups;
  if (dx || da || (e && de)) {
    // u = [dy_g B_j]_j [n, r*k]: the gradient of t e, unscaled
    std::vector<float> u(static_cast<size_t>(s.n * rk));
    for (const auto& [g, j] : sl) {
      gemm(false, false, s.n, s.r, gw, 1.0f, dy + g * gw, s.out, b + j * gw * s.r, s.r, 0.0f, u.data() + j * s.r, rk);
    }
    if (e && de) {
      // de_c = scaling sum_n t[n, c] u[n, c]
      std::vector<double> acc(static_cast<size_t>(rk), 0.0);
      for (int64_t i = 0; i < s.n; i++) {
        const float* tr = t + i * rk;
        const float* ur = u.data() + i * rk;
        for (int64_t c = 0; c < rk; c++) acc[c] += static_cast<double>(tr[c]) * ur[c];
      }
      for (int64_t c = 0; c < rk; c++) de[c] = static_cast<float>(s.scaling * acc[c]);
    }
    if (e && (dx || da)) {
      // the gradient of t: u e
      for (int64_t i = 0; i < s.n; i++) {
        float* ur = u.data() + i * rk;
        for (int64_t c = 0; c < rk; c++) ur[c] *= e[c];
      }
    }
    if (dx) {
      gemm(false, false, s.n, s.in, s.out, 1.0f, dy, s.out, w, s.in, 0.0f, dx, s.in);
      const float* uu = u.data();
      parallelFor(s.n, rowGrain(s.in), [&](int64_t r0, int64_t r1) { inputGradRows(s.in, rk, s.scaling, uu, a, dx, r0, r1); });
    }
    if (da) gemm(true, false, rk, s.in, s.n, s.scaling, u.data(), rk, x, s.in, 0.0f, da, s.in);
  }
  if (db) {
    std::vector<float> te;
    const float* h = t;
    if (e) {
      te = scaledColumns(t, e, s.n, rk);
      h = te.data();
    }
    for (const auto& [g, j] : sl) {
      gemm(true, false, gw, s.r, s.n, s.scaling, dy + g * gw, s.out, h + j * s.r, rk, 0.0f, db + j * gw * s.r, s.r);
    }
  }
  if (dw) gemm(true, false, s.out, s.in, s.n, 1.0f, dy, s.out, x, s.in, 0.0f, dw, s.in);
  if (dbias) {
    std::fill(dbias, dbias + s.out, 0.0f);
    for (int64_t i = 0; i < s.n; i++) {
      const float* row = dy + i * s.out;
      for (int64_t c = 0; c < s.out; c++) dbias[c] += row[c];
    }
  }
}

namespace {
constexpr int kShape = 5;

std::vector<Operand> forwardOperands(const LowRankShape& s, int64_t k) {
  const int64_t gw = s.out / s.groups;
  return {{"x", false, s.n * s.in},        {"w", false, s.out * s.in},       {"bias", true, s.out},
          {"a", false, s.r * k * s.in},    {"b", false, gw * k * s.r},       {"e", true, s.r * k},
          {"y", false, s.n * s.out},       {"t", false, s.n * s.r * k}};
}

std::vector<Operand> backwardOperands(const LowRankShape& s, int64_t k) {
  const int64_t gw = s.out / s.groups;
  return {{"dy", false, s.n * s.out},   {"x", false, s.n * s.in},        {"w", false, s.out * s.in},
          {"a", false, s.r * k * s.in}, {"b", false, gw * k * s.r},      {"e", true, s.r * k},
          {"t", false, s.n * s.r * k},  {"dx", true, s.n * s.in},        {"da", true, s.r * k * s.in},
          {"db", true, gw * k * s.r},   {"dw", true, s.out * s.in},      {"dbias", true, s.out},
          {"de", true, s.r * k}};
}

// Reads the shape from params, then arrays argv[0..k) at the offsets params[kShape + i];
// the G enabled flags follow the offsets. scaling is argv[k + 1].
bool readCall(napi_env env, napi_callback_info info, const std::string& fn, size_t k, LowRankShape* s,
              std::vector<float*>* ptrs, std::vector<Operand> (*operands)(const LowRankShape&, int64_t)) {
  size_t argc = 16;
  napi_value argv[16];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc < k + 2) return fail(env, fn + ": expected " + std::to_string(k) + " arrays, params, scaling");
  std::vector<int64_t> p;
  if (!i32(env, argv[k], &p, -1, (fn + " params").c_str())) return false;
  if (p.size() < kShape + k) return fail(env, fn + ": params too short");
  s->n = p[0];
  s->in = p[1];
  s->out = p[2];
  s->r = p[3];
  s->groups = p[4];
  if (s->n < 0 || s->in < 0 || s->out < 0 || s->r < 1 || s->groups < 1) return fail(env, fn + ": bad sizes");
  if (s->out % s->groups != 0) return fail(env, fn + ": out is not divisible into the groups");
  if (static_cast<int64_t>(p.size()) != kShape + static_cast<int64_t>(k) + s->groups) {
    return fail(env, fn + ": expected " + std::to_string(kShape + k + s->groups) + " params");
  }
  s->enabled.assign(static_cast<size_t>(s->groups), false);
  int64_t enabled = 0;
  for (int64_t g = 0; g < s->groups; g++) {
    s->enabled[g] = p[kShape + k + g] != 0;
    enabled += s->enabled[g] ? 1 : 0;
  }
  double scaling = 0;
  if (napi_get_value_double(env, argv[k + 1], &scaling) != napi_ok) return fail(env, fn + ": expected a scaling number");
  s->scaling = static_cast<float>(scaling);
  const auto ops = operands(*s, enabled);
  return readOperands(env, argv, ops, p.data() + kShape, fn, ptrs);
}

napi_value LowRankLinear(napi_env env, napi_callback_info info) {
  LowRankShape s;
  std::vector<float*> p;
  if (!readCall(env, info, "lowRankLinear", 8, &s, &p, forwardOperands)) return nullptr;
  lowRankForward(s, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]);
  return undefinedValue(env);
}

napi_value LowRankLinearGrad(napi_env env, napi_callback_info info) {
  LowRankShape s;
  std::vector<float*> p;
  if (!readCall(env, info, "lowRankLinearGrad", 13, &s, &p, backwardOperands)) return nullptr;
  if (p[12] && !p[5]) {
    fail(env, "lowRankLinearGrad: de asked for without e");
    return nullptr;
  }
  lowRankBackward(s, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11], p[12]);
  return undefinedValue(env);
}
}  // namespace

void defineLowRankKernels(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"lowRankLinear", nullptr, LowRankLinear, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"lowRankLinearGrad", nullptr, LowRankLinearGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}
}  // namespace peft
