#include "napi_args.h"

namespace peft {

bool fail(napi_env env, const std::string& message) {
  napi_throw_range_error(env, "EPEFTNATIVE", message.c_str());
  return false;
}

namespace {
bool typedArray(napi_env env, napi_value v, napi_typedarray_type want, void** data, int64_t* length,
                const char* what) {
  bool is = false;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return fail(env, std::string(what) + ": expected a typed array");
  napi_typedarray_type type;
  size_t len = 0;
  void* ptr = nullptr;
  napi_value buffer;
  size_t byteOffset = 0;
  if (napi_get_typedarray_info(env, v, &type, &len, &ptr, &buffer, &byteOffset) != napi_ok) {
    return fail(env, std::string(what) + ": cannot read the typed array");
  }
  if (type != want) {
    return fail(env, std::string(what) + (want == napi_float32_array ? ": expected a Float32Array" : ": expected an Int32Array"));
  }
  *data = ptr;  // already adjusted by byteOffset
  *length = static_cast<int64_t>(len);
  return true;
}
}  // namespace

bool f32(napi_env env, napi_value v, F32* out, const char* what) {
  void* p = nullptr;
  if (!typedArray(env, v, napi_float32_array, &p, &out->length, what)) return false;
  out->data = static_cast<float*>(p);
  return true;
}

bool i32(napi_env env, napi_value v, std::vector<int64_t>* out, int64_t expected, const char* what) {
  void* p = nullptr;
  int64_t len = 0;
  if (!typedArray(env, v, napi_int32_array, &p, &len, what)) return false;
  if (expected >= 0 && len != expected) return fail(env, std::string(what) + ": wrong length");
  const int32_t* src = static_cast<const int32_t*>(p);
  out->assign(src, src + len);
  return true;
}

bool isNullish(napi_env env, napi_value v) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  return t == napi_undefined || t == napi_null;
}

bool inside(napi_env env, const F32& a, int64_t offset, int64_t size, const char* what) {
  if (offset < 0 || size < 0 || offset > a.length || size > a.length - offset) {
    return fail(env, std::string(what) + ": range [" + std::to_string(offset) + ", " + std::to_string(offset + size) +
                         ") outside the array (" + std::to_string(a.length) + " elements)");
  }
  return true;
}

napi_value undefinedValue(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

bool readOperands(napi_env env, const napi_value* argv, const std::vector<Operand>& ops, const int64_t* offsets,
                  const std::string& fn, std::vector<float*>* ptrs) {
  ptrs->assign(ops.size(), nullptr);
  for (size_t i = 0; i < ops.size(); i++) {
    const std::string what = fn + " " + ops[i].name;
    if (ops[i].optional && isNullish(env, argv[i])) continue;
    F32 arr;
    if (!f32(env, argv[i], &arr, what.c_str())) return false;
    if (!inside(env, arr, offsets[i], ops[i].size, what.c_str())) return false;
    (*ptrs)[i] = arr.data + offsets[i];
  }
  return true;
}

}  // namespace peft
