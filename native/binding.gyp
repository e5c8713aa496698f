{
  "targets": [
    {
      "target_name": "peftjs_native",
      "sources": ["src/addon.cc", "src/gemm.cc", "src/conv.cc", "src/depthwise.cc", "src/parallel.cc"],
      "defines": ["NAPI_VERSION=8"],
      "cflags_cc": ["-O3", "-std=c++17", "-fno-exceptions", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags_cc!": ["-fno-rtti", "-std=gnu++17", "-std=gnu++1y"],
      "libraries": ["-lopenblas", "-lpthread"]
    }
  ]
}
