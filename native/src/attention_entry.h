#pragma once
#include <node_api.h>

namespace peft {
// Adds attention and attentionGrad (attention.h) to the exports.
void defineAttentionKernels(napi_env env, napi_value exports);
}  // namespace peft
