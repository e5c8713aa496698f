#include "parallel.h"

#include <algorithm>
#include <thread>
#include <vector>

namespace peft {
namespace {
int gThreads = 1;
}

int threadCount() { return gThreads; }

void setThreadCount(int n) { gThreads = std::max(1, n); }

void parallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  const int64_t maxParts = std::max<int64_t>(1, n / std::max<int64_t>(1, grain));
  const int parts = static_cast<int>(std::min<int64_t>(gThreads, maxParts));
  if (parts <= 1) {
    fn(0, n);
    return;
  }
  std::vector<std::thread> workers;
  workers.reserve(parts - 1);
  const int64_t step = (n + parts - 1) / parts;
  for (int p = 1; p < parts; p++) {
    const int64_t b = p * step;
    const int64_t e = std::min(n, b + step);
    if (b >= e) break;
    workers.emplace_back([&fn, b, e] { fn(b, e); });
  }
  fn(0, std::min(n, step));
  for (auto& w : workers) w.join();
}
}  // namespace peft
