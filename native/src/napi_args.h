// Reading and checking the arguments of the addon's entry points. An operand
// is a Float32Array plus an element offset into it; every range is checked
// against the array's length (`inside`) before a pointer into it is formed.
#pragma once
#include <node_api.h>

#include <cstdint>
#include <string>
#include <vector>

namespace peft {

// Throws a RangeError in JS; returns false so that callers can `return fail(...)`.
bool fail(napi_env env, const std::string& message);

struct F32 {
  float* data = nullptr;
  int64_t length = 0;
};

bool f32(napi_env env, napi_value v, F32* out, const char* what);
// an Int32Array copied to `out`; `expected` < 0 accepts any length
bool i32(napi_env env, napi_value v, std::vector<int64_t>* out, int64_t expected, const char* what);
bool isNullish(napi_env env, napi_value v);
// [offset, offset + size) lies within the array
bool inside(napi_env env, const F32& a, int64_t offset, int64_t size, const char* what);
napi_value undefinedValue(napi_env env);

// An entry point's array operand: its name (for messages), whether it may be
// null or undefined, and its extent in elements.
struct Operand {
  const char* name;
  bool optional;
  int64_t size;
};

// (*ptrs)[i] = argv[i]'s data + offsets[i] for each of ops, every range checked
// with `inside`; an absent optional operand stays nullptr. `fn` names the call.
bool readOperands(napi_env env, const napi_value* argv, const std::vector<Operand>& ops, const int64_t* offsets,
                  const std::string& fn, std::vector<float*>* ptrs);

}  // namespace peft
