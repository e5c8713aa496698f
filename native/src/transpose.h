#pragma once
#include <cstdint>

namespace peft {
constexpr int kMaxTransposeRank = 8;
// y = x with its axes permuted: output axis d is input axis perm[d]. 4-byte
// elements copied as they are (float32 or int32 alike).
void transpose(int rank, const int64_t* shape, const int64_t* perm, const float* x, float* y);
}  // namespace peft
