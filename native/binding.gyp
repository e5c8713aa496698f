{
  "targets": [
    {
      "target_name": "peftjs_native",
      "sources": [
        "src/addon.cc", "src/napi_args.cc", "src/gemm.cc", "src/conv.cc", "src/depthwise.cc", "src/parallel.cc",
        "src/fused_entry.cc", "src/gelu.cc", "src/layernorm.cc", "src/softmax.cc", "src/transpose.cc",
        "src/attention.cc", "src/attention_entry.cc", "src/reduce.cc", "src/adam.cc", "src/importance.cc", "src/lowrank.cc", "src/orthogonality.cc", "src/bottleneck.cc", "src/elementwise.cc", "src/affine.cc", "src/crash.cc"
      ],
      # oneDNN's sgemm for products when its library is there (locate.js; docs/native.md, "Products on oneDNN")
      "defines": ["NAPI_VERSION=8", "<!@(node -p \"require('./locate.js').dnnlDefines()\")"],
      # -fno-trapping-math: nothing here reads the floating-point exception flags, and without it GCC
      # will not if-convert (so not vectorise) the clamps and selects of the fused kernels' exp and erf
      "cflags_cc": ["-O3", "-std=c++17", "-fno-exceptions", "-fno-trapping-math", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags_cc!": ["-fno-rtti", "-std=gnu++17", "-std=gnu++1y"],
      "libraries": ["-lopenblas", "-lpthread", "<!@(node -p \"require('./locate.js').dnnlLibraries()\")"]
    }
  ]
}
