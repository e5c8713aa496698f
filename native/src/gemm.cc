// Matrix products on OpenBLAS's sgemm. A batch of products is split over the
// addon's threads (each product on one OpenBLAS thread); a single product runs
// on OpenBLAS's threads when it is large enough (kThreadedWork), else on one.
#include "gemm.h"

#include <algorithm>
#include <cstring>

#include "blas.h"
#include "parallel.h"

namespace peft {

void sgemm(bool transA, bool transB, int m, int n, int k, const float* a, const float* b, float beta, float* c) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    const int64_t size = static_cast<int64_t>(m) * n;
    if (beta == 0.0f) {
      std::fill(c, c + size, 0.0f);
    } else if (beta != 1.0f) {
      for (int64_t i = 0; i < size; i++) c[i] *= beta;
    }
    return;
  }
  cblas_sgemm(kRowMajor, transA ? kTrans : kNoTrans, transB ? kTrans : kNoTrans, m, n, k, 1.0f, a, transA ? m : k, b,
              transB ? k : n, beta, c, n);
}

namespace {
// OpenBLAS's current thread count as last set here (OpenBLAS keeps one process-wide count)
int gBlasThreads = -1;
}

void useBlasThreads(int n) {
  if (n == gBlasThreads) return;
  openblas_set_num_threads(n);
  gBlasThreads = n;
}

void sgemmSized(bool transA, bool transB, int m, int n, int k, const float* a, const float* b, float beta, float* c) {
  const double work = static_cast<double>(m) * n * k;
  useBlasThreads(work >= kThreadedWork ? threadCount() : 1);
  sgemm(transA, transB, m, n, k, a, b, beta, c);
}

void batchGemm(const BatchGemm& g) {
  const int64_t mn = static_cast<int64_t>(g.m) * g.n;
  auto one = [&g, mn](int64_t i, bool sized) {
    float* c = g.c + i * mn;
    float beta = 0.0f;
    if (g.bias) {
      for (int r = 0; r < g.m; r++) std::memcpy(c + static_cast<int64_t>(r) * g.n, g.bias, sizeof(float) * g.n);
      beta = 1.0f;
    }
    (sized ? sgemmSized : sgemm)(g.transA, g.transB, g.m, g.n, g.k, g.a + g.aOff[i], g.b + g.bOff[i], beta, c);
  };
  const double work = static_cast<double>(g.m) * g.n * g.k;
  if (g.batch > 1 && threadCount() > 1 && work * g.batch >= kThreadedWork) {
    // a batch: its matrices split over the threads, each product on one OpenBLAS thread
    // (one start and join per batch rather than one per product)
    useBlasThreads(1);
    const int64_t grain = std::max<int64_t>(1, static_cast<int64_t>(kThreadedWork / 2 / std::max(1.0, work)));
    parallelFor(g.batch, grain, [&one](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; i++) one(i, false);
    });
    return;
  }
  for (int64_t i = 0; i < g.batch; i++) one(i, true);
}
}  // namespace peft
