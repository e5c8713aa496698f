// A minimal parallel-for over the addon's thread count (the same count that
// OpenBLAS uses), on a pool of threads that stay alive between calls: a
// training step makes hundreds of small parallel calls (GELU, layer norm,
// softmax, the elementwise kernels...), and starting and joining threads per
// call cost 10-50 us each. An idle worker spins for a few tens of
// microseconds (the next kernel usually follows soon) and then sleeps on a
// condition variable, so that it does not hold a core that OpenBLAS's workers,
// the JS thread or another process needs.
#pragma once
#include <cstdint>
#include <functional>

namespace peft {
int threadCount();
void setThreadCount(int n);
// Runs fn(begin, end) over [0, n) in up to threadCount() contiguous parts of at
// least `grain` items each; the calling thread runs part 0 (and any part no
// worker has started yet), and the call returns when every part has finished. fn(0, n) on the calling thread when that is one
// part, when called from inside a part (nested), or while another thread's call
// holds the pool.
void parallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);
}  // namespace peft
