#pragma once
#include <cstdint>

namespace peft {
// A batch of row-major products C_i[m, n] = op(A_i) op(B_i) (+ bias[n] on every row).
// A_i = a + aOff[i], B_i = b + bOff[i] (element offsets), C_i = c + i * m * n.
struct BatchGemm {
  const float* a;
  const float* b;
  float* c;
  const float* bias;  // may be null
  int batch, m, n, k;
  bool transA, transB;
  const int64_t* aOff;
  const int64_t* bOff;
};

void batchGemm(const BatchGemm& g);
}  // namespace peft
