// N-API entry points of the packed-qkv attention (attention.h):
//
//   attention(qkv, rh, rw, bias, out, probs, params, scale)   (probs null: not kept, for inference)
//   attentionGrad(dout, qkv, probs, rh, rw, dqkv, drh, drw, dbias, params, scale)
//   params = [nb, n, heads, hd, qh, qw, kh, kw, scaleOnQuery, ld, qOff, kOff, vOff, headStride,
//             offset of each array...]
//
// rh and rw (and drh, drw) may be null; rh and rw come together. bias and
// dbias may be null. The q, k, v columns of the layout must lie within a row
// and not overlap. Every range is checked against its array before a pointer
// is formed.
#include "attention_entry.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "attention.h"
#include "napi_args.h"

namespace peft {
namespace {

constexpr int kShapeParams = 14;

struct Arg {
  const char* name;
  bool optional;
};

// The 3 x heads column ranges [off, off + hd) of q, k, v lie within [0, ld) and are disjoint.
bool layoutFits(const AttentionShape& s) {
  if (s.ld < 0 || s.qOff < 0 || s.kOff < 0 || s.vOff < 0 || s.headStride < 0) return false;
  if (s.hd == 0 || s.heads == 0) return true;
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (int64_t h = 0; h < s.heads; h++) {
    for (int64_t off : {s.qOff, s.kOff, s.vOff}) ranges.push_back({off + h * s.headStride, off + h * s.headStride + s.hd});
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 0; i < ranges.size(); i++) {
    if (ranges[i].second > s.ld) return false;
    if (i > 0 && ranges[i].first < ranges[i - 1].second) return false;
  }
  return true;
}

// Reads arrays argv[0..k), params argv[k], scale argv[k+1]; sizeKinds[i] says
// which extent (below) array i must hold from its offset.
bool readCall(napi_env env, napi_callback_info info, const char* fn, const std::vector<Arg>& args, AttentionShape* s,
              std::vector<float*>* ptrs, const std::vector<int>& sizeKinds, size_t rhArg) {
  const size_t k = args.size();
  size_t argc = 16;
  napi_value argv[16];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  const std::string name(fn);
  if (argc < k + 2) return fail(env, name + ": expected " + std::to_string(k) + " arrays, params, scale");
  std::vector<int64_t> p;
  if (!i32(env, argv[k], &p, kShapeParams + static_cast<int64_t>(k), (name + " params").c_str())) return false;
  double scale = 0;
  if (napi_get_value_double(env, argv[k + 1], &scale) != napi_ok) return fail(env, name + ": expected a scale number");
  *s = {p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], static_cast<float>(scale), p[8] != 0,
        p[9], p[10], p[11], p[12], p[13]};
  for (int i = 0; i < 8; i++) {
    if (p[i] < 0) return fail(env, name + ": negative size");
  }
  if (!layoutFits(*s)) {
    return fail(env, name + ": the q, k, v columns (offsets " + std::to_string(s->qOff) + ", " + std::to_string(s->kOff) +
                         ", " + std::to_string(s->vOff) + ", head stride " + std::to_string(s->headStride) +
                         ") overlap or fall outside rows of " + std::to_string(s->ld));
  }
  const bool rel = !isNullish(env, argv[rhArg]);
  if (rel && (s->qh * s->qw != s->n || s->kh * s->kw != s->n)) {
    return fail(env, name + ": the rel-pos grids (" + std::to_string(s->qh) + "x" + std::to_string(s->qw) + ", " +
                         std::to_string(s->kh) + "x" + std::to_string(s->kw) + ") do not cover the " +
                         std::to_string(s->n) + " tokens");
  }
  const int64_t c = s->heads * s->hd;
  // 0: [nb, n, ld]  1: [nb, n, C]  2: [nb, heads, n, n]  3: [qh, kh, hd]  4: [qw, kw, hd]  5: [heads, n, n]
  const int64_t sizes[] = {s->nb * s->n * s->ld,        s->nb * s->n * c,         s->nb * s->heads * s->n * s->n,
                           s->qh * s->kh * s->hd,       s->qw * s->kw * s->hd,    s->heads * s->n * s->n};
  ptrs->assign(k, nullptr);
  for (size_t i = 0; i < k; i++) {
    const std::string what = name + " " + args[i].name;
    if (args[i].optional && isNullish(env, argv[i])) continue;
    F32 a;
    if (!f32(env, argv[i], &a, what.c_str())) return false;
    if (!inside(env, a, p[kShapeParams + i], sizes[sizeKinds[i]], what.c_str())) return false;
    (*ptrs)[i] = a.data + p[kShapeParams + i];
  }
  return true;
}

napi_value Attention(napi_env env, napi_callback_info info) {
  AttentionShape s;
  std::vector<float*> a;
  if (!readCall(env, info, "attention",
                {{"qkv", false}, {"rh", true}, {"rw", true}, {"bias", true}, {"out", false}, {"probs", true}}, &s,
                &a, {0, 3, 4, 5, 1, 2}, 1)) {
    return nullptr;
  }
  if ((a[1] == nullptr) != (a[2] == nullptr)) {
    fail(env, "attention: rh and rw come together");
    return nullptr;
  }
  attentionForward(s, a[0], a[1], a[2], a[3], a[4], a[5]);
  return undefinedValue(env);
}

napi_value AttentionGrad(napi_env env, napi_callback_info info) {
  AttentionShape s;
  std::vector<float*> a;
  if (!readCall(env, info, "attentionGrad",
                {{"dout", false},
                 {"qkv", false},
                 {"probs", false},
                 {"rh", true},
                 {"rw", true},
                 {"dqkv", false},
                 {"drh", true},
                 {"drw", true},
                 {"dbias", true}},
                &s, &a, {1, 0, 2, 3, 4, 0, 3, 4, 5}, 3)) {
    return nullptr;
  }
  if ((a[3] == nullptr) != (a[4] == nullptr) || (a[3] == nullptr && (a[6] != nullptr || a[7] != nullptr))) {
    fail(env, "attentionGrad: rh and rw come together, and drh, drw need them");
    return nullptr;
  }
  attentionBackward(s, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8]);
  return undefinedValue(env);
}
}  // namespace

void defineAttentionKernels(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"attention", nullptr, Attention, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"attentionGrad", nullptr, AttentionGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}

}  // namespace peft
