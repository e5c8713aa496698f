// The bottleneck MLP (bottleneck.h) on the addon's products and its GELU: each
// product is one strided sgemm on the operands in place (the bias rows, and x or
// dy for the skip, are written into the output first and the product
// accumulates onto them with beta = 1); GELU and its gradient are the
// addon's (gelu.cc), so the values are those of core geluErf's native kernel.
// The rows are split over the addon's persistent pool (partsFor below).
//
// N-API entry points:
//   bottleneckMlp(x, w1, b1, w2, b2, y, pre, params[, scale])
//     params = [n, in, hid, out, skip, xOff, w1Off, b1Off, w2Off, b2Off, yOff, preOff]
//   bottleneckMlpGrad(dy, x, w1, w2, pre, dx, dw1, db1, dw2, db2, params[, scale])
//     params = [n, in, hid, out, skip, dyOff, xOff, w1Off, w2Off, preOff, dxOff, dw1Off, db1Off, dw2Off, db2Off]
// scale (of the output without the skip, bottleneck.h) is 1 when absent.
// The gradients are optional (null); every range is checked against its array
// before a pointer into it is formed.
#include "bottleneck.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "blas.h"
#include "fused.h"
#include "napi_args.h"
#include "parallel.h"

namespace peft {
namespace {

// rows [r0, r1) of c [., cols] = bias (+ add's rows, when given)
void fillRows(int64_t r0, int64_t r1, int64_t cols, const float* bias, const float* add, float* c) {
  for (int64_t i = r0; i < r1; i++) {
    float* row = c + i * cols;
    if (add) {
      const float* a = add + i * cols;
      for (int64_t j = 0; j < cols; j++) row[j] = bias[j] + a[j];
    } else {
      std::memcpy(row, bias, sizeof(float) * cols);
    }
  }
}

// v[0..n) *= s (nothing when s = 1)
void scaleBy(int64_t n, float s, float* v) {
  if (s == 1.0f) return;
  for (int64_t j = 0; j < n; j++) v[j] *= s;
}

// out[cols] (+)= the sum of rows [r0, r1) of m [., cols]
void columnSums(int64_t r0, int64_t r1, int64_t cols, const float* m, float* out) {
  std::fill(out, out + cols, 0.0f);
  for (int64_t i = r0; i < r1; i++) {
    const float* row = m + i * cols;
    for (int64_t c = 0; c < cols; c++) out[c] += row[c];
  }
}

// The rows split over the threads when the products are worth it (kThreadedWork
// multiply-adds), in parts of 16 rows at least; each part runs the whole layer
// for its rows on one thread (its products sgemmStridedOne, its GELU inline: a
// nested parallelFor), so a call is one start and join of the pool instead of
// one per product and pass, and a part's rows stay in its core's cache from one
// product to the next.
int partsFor(const BottleneckShape& s) {
  const double work = static_cast<double>(s.n) * (s.in * s.hid + s.hid * s.out);
  if (work < kThreadedWork) return 1;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threadCount(), s.n / 16)));
}

// sgemmStridedOne, or the threaded one when the call has one part (from the JS thread)
void product(int parts, bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
             int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  (parts > 1 ? sgemmStridedOne : sgemmStrided)(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
}  // namespace

void bottleneckForward(const BottleneckShape& s, const float* x, const float* w1, const float* b1, const float* w2,
                       const float* b2, float* y, float* pre) {
  if (s.n == 0) return;
  const int parts = partsFor(s);
  if (parts > 1) useBlasThreads(1);
  // y's rows start as scale b2 (+ x), the product adds scale (g W2^T)
  std::vector<float> b2s;
  if (s.scale != 1.0f) {
    b2s.assign(b2, b2 + s.out);
    scaleBy(s.out, s.scale, b2s.data());
    b2 = b2s.data();
  }
  parallelFor(parts, 1, [&](int64_t p0, int64_t p1) {
    std::vector<float> g;
    for (int64_t part = p0; part < p1; part++) {
      const int64_t r0 = part * s.n / parts, r1 = (part + 1) * s.n / parts, m = r1 - r0;
      fillRows(r0, r1, s.hid, b1, nullptr, pre);
      product(parts, false, true, m, s.hid, s.in, 1.0f, x + r0 * s.in, s.in, w1, s.in, 1.0f, pre + r0 * s.hid, s.hid);
      g.resize(static_cast<size_t>(m * s.hid));
      geluForward(m * s.hid, pre + r0 * s.hid, g.data());
      fillRows(r0, r1, s.out, b2, s.skip ? x : nullptr, y);
      product(parts, false, true, m, s.out, s.hid, s.scale, g.data(), s.hid, w2, s.hid, 1.0f, y + r0 * s.out, s.out);
    }
  });
}

void bottleneckBackward(const BottleneckShape& s, const float* dy, const float* x, const float* w1, const float* w2,
                        const float* pre, float* dx, float* dw1, float* db1, float* dw2, float* db2) {
  const int64_t w1Size = s.hid * s.in, w2Size = s.out * s.hid;
  if (s.n == 0) {
    // no rows: zero weight and bias gradients
    for (auto [d, size] : {std::pair<float*, int64_t>{dw1, w1Size}, {db1, s.hid}, {dw2, w2Size}, {db2, s.out}}) {
      if (d) std::fill(d, d + size, 0.0f);
    }
    return;
  }
  const int parts = partsFor(s);
  if (parts > 1) useBlasThreads(1);
  // part 0 writes the weight and bias gradients themselves, the others their
  // own partial sums, added in order at the end
  const int64_t o1 = 0, o2 = o1 + (dw1 ? w1Size : 0), o3 = o2 + (db1 ? s.hid : 0), o4 = o3 + (dw2 ? w2Size : 0),
                total = o4 + (db2 ? s.out : 0);
  std::vector<std::vector<float>> partial(static_cast<size_t>(parts - 1));
  const bool inner = dx || dw1 || db1;
  parallelFor(parts, 1, [&](int64_t p0, int64_t p1) {
    std::vector<float> scratch, dpre;
    for (int64_t part = p0; part < p1; part++) {
      const int64_t r0 = part * s.n / parts, r1 = (part + 1) * s.n / parts, m = r1 - r0;
      float* base = nullptr;
      if (part > 0) {
        partial[part - 1].resize(static_cast<size_t>(total));
        base = partial[part - 1].data();
      }
      float* pw1 = part > 0 ? base + o1 : dw1;
      float* pb1 = part > 0 ? base + o2 : db1;
      float* pw2 = part > 0 ? base + o3 : dw2;
      float* pb2 = part > 0 ? base + o4 : db2;
      const float* dyr = dy + r0 * s.out;
      const float* prer = pre + r0 * s.hid;
      // one scratch [m, hid] for g = gelu(pre), then for dh = dy W2 (geluBackward's
      // operands are restrict: dpre is a second one, not dh in place)
      scratch.resize(static_cast<size_t>(m * s.hid));
      if (dw2) {
        geluForward(m * s.hid, prer, scratch.data());
        product(parts, true, false, s.out, s.hid, m, s.scale, dyr, s.out, scratch.data(), s.hid, 0.0f, pw2, s.hid);
      }
      if (db2) {
        columnSums(0, m, s.out, dyr, pb2);
        scaleBy(s.out, s.scale, pb2);
      }
      if (!inner) continue;
      // dh = scale dy W2 (the skip's dy reaches dx unscaled, below)
      product(parts, false, false, m, s.hid, s.out, s.scale, dyr, s.out, w2, s.hid, 0.0f, scratch.data(), s.hid);
      dpre.resize(static_cast<size_t>(m * s.hid));
      geluBackward(m * s.hid, prer, scratch.data(), dpre.data());
      if (dw1) {
        product(parts, true, false, s.hid, s.in, m, 1.0f, dpre.data(), s.hid, x + r0 * s.in, s.in, 0.0f, pw1, s.in);
      }
      if (db1) columnSums(0, m, s.hid, dpre.data(), pb1);
      if (dx) {
        if (s.skip) std::memcpy(dx + r0 * s.in, dyr, sizeof(float) * m * s.in);
        product(parts, false, false, m, s.in, s.hid, 1.0f, dpre.data(), s.hid, w1, s.in, s.skip ? 1.0f : 0.0f,
                dx + r0 * s.in, s.in);
      }
    }
  });
  for (const auto& buf : partial) {
    const float* b = buf.data();
    const auto add = [](float* to, const float* from, int64_t size) {
      for (int64_t i = 0; i < size; i++) to[i] += from[i];
    };
    if (dw1) add(dw1, b + o1, w1Size);
    if (db1) add(db1, b + o2, s.hid);
    if (dw2) add(dw2, b + o3, w2Size);
    if (db2) add(db2, b + o4, s.out);
  }
}

namespace {
constexpr int kShape = 5;

std::vector<Operand> forwardOperands(const BottleneckShape& s) {
  return {{"x", false, s.n * s.in},   {"w1", false, s.hid * s.in}, {"b1", false, s.hid},     {"w2", false, s.out * s.hid},
          {"b2", false, s.out},       {"y", false, s.n * s.out},   {"pre", false, s.n * s.hid}};
}

std::vector<Operand> backwardOperands(const BottleneckShape& s) {
  return {{"dy", false, s.n * s.out},   {"x", false, s.n * s.in},     {"w1", false, s.hid * s.in},
          {"w2", false, s.out * s.hid}, {"pre", false, s.n * s.hid},  {"dx", true, s.n * s.in},
          {"dw1", true, s.hid * s.in},  {"db1", true, s.hid},         {"dw2", true, s.out * s.hid},
          {"db2", true, s.out}};
}

// Reads the shape from params (argv[k]) and the scale (argv[k + 1], 1 when absent), then arrays argv[0..k) at
// the offsets params[kShape + i].
bool readCall(napi_env env, napi_callback_info info, const std::string& fn, size_t k, BottleneckShape* s,
              std::vector<float*>* ptrs, std::vector<Operand> (*operands)(const BottleneckShape&)) {
  size_t argc = 16;
  napi_value argv[16];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc < k + 1) return fail(env, fn + ": expected " + std::to_string(k) + " arrays and params");
  s->scale = 1.0f;
  if (argc > k + 1 && !isNullish(env, argv[k + 1])) {
    double scale = 1.0;
    if (napi_get_value_double(env, argv[k + 1], &scale) != napi_ok) return fail(env, fn + ": expected a scale number");
    s->scale = static_cast<float>(scale);
  }
  std::vector<int64_t> p;
  if (!i32(env, argv[k], &p, static_cast<int64_t>(kShape + k), (fn + " params").c_str())) return false;
  s->n = p[0];
  s->in = p[1];
  s->hid = p[2];
  s->out = p[3];
  s->skip = p[4] != 0;
  if (s->n < 0 || s->in < 0 || s->hid < 0 || s->out < 0) return fail(env, fn + ": bad sizes");
  if (s->skip && s->out != s->in) return fail(env, fn + ": the skip needs out = in");
  const auto ops = operands(*s);
  return readOperands(env, argv, ops, p.data() + kShape, fn, ptrs);
}

napi_value BottleneckMlp(napi_env env, napi_callback_info info) {
  BottleneckShape s;
  std::vector<float*> p;
  if (!readCall(env, info, "bottleneckMlp", 7, &s, &p, forwardOperands)) return nullptr;
  bottleneckForward(s, p[0], p[1], p[2], p[3], p[4], p[5], p[6]);
  return undefinedValue(env);
}

napi_value BottleneckMlpGrad(napi_env env, napi_callback_info info) {
  BottleneckShape s;
  std::vector<float*> p;
  if (!readCall(env, info, "bottleneckMlpGrad", 10, &s, &p, backwardOperands)) return nullptr;
  bottleneckBackward(s, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9]);
  return undefinedValue(env);
}
}  // namespace

void defineBottleneckKernels(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"bottleneckMlp", nullptr, BottleneckMlp, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"bottleneckMlpGrad", nullptr, BottleneckMlpGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}
}  // namespace peft
