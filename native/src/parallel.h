// A minimal parallel-for over the addon's thread count (the same count that
// OpenBLAS uses). Threads are started per call and joined before it returns:
// the loops that use it are large (tens of microseconds at least), and no
// thread stays alive to compete with OpenBLAS's workers or the JS thread.
#pragma once
#include <cstdint>
#include <functional>

namespace peft {
int threadCount();
void setThreadCount(int n);
// Runs fn(begin, end) over [0, n) in up to threadCount() contiguous parts of at
// least `grain` items each; fn(0, n) on the calling thread when that is one part.
void parallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);
}  // namespace peft
