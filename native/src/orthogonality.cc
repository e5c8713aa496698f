// The orthogonality distances (orthogonality.h) of many small factors in one
// call each way: each Gram matrix is r x r with r the rank (4 to 12 in
// AdaLoRA), so plain loops, one thread, double accumulation.
//
// N-API entry points (arrays passed as a JS array of Float32Arrays, one per factor):
//   orthogonality(xs, norms, params)
//     params = [count, normsOff, then per factor: rows, cols, side (1: X^T X), xOff]
//   orthogonalityGrad(xs, dn, norms, dxs, params)
//     params = [count, dnOff, normsOff, then per factor: rows, cols, side, xOff, dxOff]
// Every range is checked against its array before a pointer into it is formed.
#include "orthogonality.h"

#include <cmath>
#include <string>
#include <vector>

#include "napi_args.h"

namespace peft {
namespace {
int64_t rankOf(const GramFactor& f) { return f.colsSide ? f.cols : f.rows; }

// D = Gram(x) - I, [r, r] row-major, in double.
std::vector<double> gramMinusIdentity(const GramFactor& f, const float* x) {
  const int64_t r = rankOf(f);
  std::vector<double> d(static_cast<size_t>(r * r), 0.0);
  if (f.colsSide) {
    // x [rows, r]: D[i][j] = sum_k x[k][i] x[k][j]
    for (int64_t k = 0; k < f.rows; k++) {
      const float* row = x + k * f.cols;
      for (int64_t i = 0; i < r; i++) {
        const double xi = row[i];
        double* di = d.data() + i * r;
        for (int64_t j = 0; j < r; j++) di[j] += xi * row[j];
      }
    }
  } else {
    // x [r, cols]: D[i][j] = sum_k x[i][k] x[j][k]
    for (int64_t i = 0; i < r; i++) {
      const float* xi = x + i * f.cols;
      for (int64_t j = i; j < r; j++) {
        const float* xj = x + j * f.cols;
        double s = 0;
        for (int64_t k = 0; k < f.cols; k++) s += static_cast<double>(xi[k]) * xj[k];
        d[i * r + j] = s;
        d[j * r + i] = s;
      }
    }
  }
  for (int64_t i = 0; i < r; i++) d[i * r + i] -= 1.0;
  return d;
}
}  // namespace

float orthogonalityNorm(const GramFactor& f, const float* x) {
  const auto d = gramMinusIdentity(f, x);
  double s = 0;
  for (double v : d) s += v * v;
  return static_cast<float>(std::sqrt(s));
}

void orthogonalityGrad(const GramFactor& f, const float* x, float coef, float* dx) {
  const int64_t r = rankOf(f);
  const auto d = gramMinusIdentity(f, x);
  if (f.colsSide) {
    // dx [rows, r] = coef x D
    for (int64_t k = 0; k < f.rows; k++) {
      const float* row = x + k * r;
      float* out = dx + k * r;
      for (int64_t i = 0; i < r; i++) {
        double s = 0;
        for (int64_t j = 0; j < r; j++) s += row[j] * d[j * r + i];
        out[i] = static_cast<float>(coef * s);
      }
    }
  } else {
    // dx [r, cols] = coef D x
    std::vector<double> acc(static_cast<size_t>(f.cols));
    for (int64_t i = 0; i < r; i++) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t j = 0; j < r; j++) {
        const double dij = d[i * r + j];
        const float* xj = x + j * f.cols;
        for (int64_t k = 0; k < f.cols; k++) acc[k] += dij * xj[k];
      }
      float* out = dx + i * f.cols;
      for (int64_t k = 0; k < f.cols; k++) out[k] = static_cast<float>(coef * acc[k]);
    }
  }
}

namespace {
// The factors' shapes and pointers from params (per factor `stride` entries from `head`) and the JS array xs
// (and dxs when given).
bool readFactors(napi_env env, napi_value xs, napi_value dxs, const std::vector<int64_t>& p, size_t head,
                 size_t stride, const std::string& fn, std::vector<GramFactor>* fs, std::vector<const float*>* xp,
                 std::vector<float*>* dxp) {
  const int64_t count = p[0];
  if (count < 0 || p.size() != head + stride * static_cast<size_t>(count)) return fail(env, fn + ": params do not match the count");
  for (napi_value arr : {xs, dxs}) {
    if (!arr) continue;
    bool isArray = false;
    uint32_t len = 0;
    if (napi_is_array(env, arr, &isArray) != napi_ok || !isArray) return fail(env, fn + ": expected an array of Float32Arrays");
    napi_get_array_length(env, arr, &len);
    if (static_cast<int64_t>(len) != count) return fail(env, fn + ": expected " + std::to_string(count) + " arrays");
  }
  for (int64_t i = 0; i < count; i++) {
    const int64_t* q = p.data() + head + stride * i;
    GramFactor f{q[0], q[1], q[2] != 0};
    if (f.rows < 0 || f.cols < 0) return fail(env, fn + ": bad sizes");
    const std::string what = fn + " x" + std::to_string(i);
    napi_value v;
    napi_get_element(env, xs, static_cast<uint32_t>(i), &v);
    F32 a;
    if (!f32(env, v, &a, what.c_str()) || !inside(env, a, q[3], f.rows * f.cols, what.c_str())) return false;
    fs->push_back(f);
    xp->push_back(a.data + q[3]);
    if (dxs) {
      const std::string dwhat = fn + " dx" + std::to_string(i);
      napi_get_element(env, dxs, static_cast<uint32_t>(i), &v);
      F32 g;
      if (!f32(env, v, &g, dwhat.c_str()) || !inside(env, g, q[4], f.rows * f.cols, dwhat.c_str())) return false;
      dxp->push_back(g.data + q[4]);
    }
  }
  return true;
}

napi_value Orthogonality(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  const std::string fn = "orthogonality";
  if (argc < 3) return fail(env, fn + ": expected xs, norms, params"), nullptr;
  std::vector<int64_t> p;
  if (!i32(env, argv[2], &p, -1, "orthogonality params")) return nullptr;
  if (p.size() < 2) return fail(env, fn + ": params too short"), nullptr;
  std::vector<GramFactor> fs;
  std::vector<const float*> xp;
  if (!readFactors(env, argv[0], nullptr, p, 2, 4, fn, &fs, &xp, nullptr)) return nullptr;
  F32 norms;
  if (!f32(env, argv[1], &norms, "orthogonality norms") || !inside(env, norms, p[1], p[0], "orthogonality norms")) return nullptr;
  for (size_t i = 0; i < fs.size(); i++) norms.data[p[1] + i] = orthogonalityNorm(fs[i], xp[i]);
  return undefinedValue(env);
}

napi_value OrthogonalityGrad(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  const std::string fn = "orthogonalityGrad";
  if (argc < 5) return fail(env, fn + ": expected xs, dn, norms, dxs, params"), nullptr;
  std::vector<int64_t> p;
  if (!i32(env, argv[4], &p, -1, "orthogonalityGrad params")) return nullptr;
  if (p.size() < 3) return fail(env, fn + ": params too short"), nullptr;
  std::vector<GramFactor> fs;
  std::vector<const float*> xp;
  std::vector<float*> dxp;
  if (!readFactors(env, argv[0], argv[3], p, 3, 5, fn, &fs, &xp, &dxp)) return nullptr;
  F32 dn, norms;
  if (!f32(env, argv[1], &dn, "orthogonalityGrad dn") || !inside(env, dn, p[1], p[0], "orthogonalityGrad dn")) return nullptr;
  if (!f32(env, argv[2], &norms, "orthogonalityGrad norms") || !inside(env, norms, p[2], p[0], "orthogonalityGrad norms")) return nullptr;
  for (size_t i = 0; i < fs.size(); i++) {
    const float n = norms.data[p[2] + i];
    // d||D||/dX = 2 (D X or X D) / ||D||; 0 at a zero norm (as PyTorch's), never NaN
    const float coef = n == 0.0f ? 0.0f : dn.data[p[1] + i] * 2.0f / n;
    orthogonalityGrad(fs[i], xp[i], coef, dxp[i]);
  }
  return undefinedValue(env);
}
}  // namespace

void defineOrthogonalityKernels(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"orthogonality", nullptr, Orthogonality, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"orthogonalityGrad", nullptr, OrthogonalityGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}
}  // namespace peft
