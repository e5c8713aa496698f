// The distance of factors from orthonormality (AdaLoRA's regulariser, as HF
// PEFT writes it), for many small matrices in one call each way:
//
//   norm_i = ||Gram(X_i) - I||_F,  Gram = X X^T ('rows': A [r, in]) or X^T X ('cols': B [out, r])
//   dX_i = dnorm_i * 2 (D_i X_i or X_i D_i) / norm_i, 0 where norm_i = 0 (D_i = Gram - I, recomputed)
#pragma once
#include <node_api.h>

#include <cstdint>

namespace peft {
struct GramFactor {
  int64_t rows, cols;
  bool colsSide;  // true: X^T X ([cols, cols]); false: X X^T ([rows, rows])
};

// ||Gram(x) - I||_F, accumulated in double.
float orthogonalityNorm(const GramFactor& f, const float* x);

// dx = coef (D x or x D), D = Gram(x) - I.
void orthogonalityGrad(const GramFactor& f, const float* x, float coef, float* dx);

// Adds orthogonality and orthogonalityGrad to the exports.
void defineOrthogonalityKernels(napi_env env, napi_value exports);
}  // namespace peft
