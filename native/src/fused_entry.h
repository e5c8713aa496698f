#pragma once
#include <node_api.h>

namespace peft {
// Adds gelu, geluGrad, layerNorm, layerNormGrad, softmax, softmaxGrad, transpose and adam to the exports.
void defineFusedKernels(napi_env env, napi_value exports);
}  // namespace peft
