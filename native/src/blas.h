// The few CBLAS / OpenBLAS entry points the addon uses, declared here rather
// than through <cblas.h>: Debian's cblas.h is an "alternatives" link that may
// point at another BLAS's header, while the library linked is always OpenBLAS.
// Debian's libopenblas0 uses 32-bit integers (the 64-bit-index build is the
// separate libopenblas64-0 package).
#pragma once

#include <cstdint>

extern "C" {
void cblas_sgemm(int order, int transA, int transB, int m, int n, int k, float alpha, const float* a, int lda,
                 const float* b, int ldb, float beta, float* c, int ldc);
void openblas_set_num_threads(int n);
int openblas_get_num_threads(void);
char* openblas_get_config(void);
char* openblas_get_corename(void);
int openblas_get_parallel(void);
}

#ifdef PEFT_HAVE_DNNL
// oneDNN's BLAS-like product and version (dnnl.h's declarations, so that only the
// library is needed: libdnnl2 is there without libdnnl-dev when python3-torch is).
// Row-major, 64-bit sizes; returns dnnl_status_t (0 = success).
extern "C" {
struct dnnl_version_t {
  int major, minor, patch;
  const char* hash;
  unsigned cpu_runtime, gpu_runtime;
};
int dnnl_sgemm(char transa, char transb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
               const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
const dnnl_version_t* dnnl_version(void);
// OpenMP's, from the libgomp that an OpenMP build of oneDNN (Debian's) loads;
// weak, so that a build of oneDNN on another runtime still loads (then null)
void omp_set_num_threads(int n) __attribute__((weak));
}
#endif

namespace peft {
constexpr int kRowMajor = 101;
constexpr int kNoTrans = 111;
constexpr int kTrans = 112;

// C[m, n] = alpha op(A) op(B) + beta C, row-major with leading dimensions, on
// oneDNN or OpenBLAS, whichever is faster for the shape (gemm.cc). Handles empty
// sizes without calling either (BLAS would reject ld = 0).
//
// sgemmStrided: from the JS thread, with the engine's threads set for the size:
// one thread below kThreadedWork multiply-adds, all of them above.
void sgemmStrided(bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                  const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
// sgemmStridedOne: on one thread, from any thread (a parallelFor part). OpenBLAS
// runs with the process-wide count, which the JS thread must have set to 1
// (useBlasThreads) before it starts the parts; oneDNN with one thread (this
// thread's OpenMP count, set here).
void sgemmStridedOne(bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                     int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// The same, packed (lda, ldb from the shapes, ldc = n), alpha = 1: sgemm is
// sgemmStridedOne, sgemmSized is sgemmStrided.
void sgemm(bool transA, bool transB, int m, int n, int k, const float* a, const float* b, float beta, float* c);
void sgemmSized(bool transA, bool transB, int m, int n, int k, const float* a, const float* b, float beta, float* c);

// Sets OpenBLAS's thread count (JS thread only; no call when it is already that).
void useBlasThreads(int n);

// Sets the calling thread's OpenMP thread count, which oneDNN's products use
// (OpenMP keeps one per thread; no call when it is already that). No-op
// without oneDNN.
void useDnnlThreads(int n);

// Which library runs products: "oneDNN 2.6.3 (OpenMP), OpenBLAS for ..." or
// "OpenBLAS" (with why, when oneDNN was built in but is not used).
const char* productEngine();

// Multiply-adds from which a product (or a batch of them) is worth splitting
// over threads: ~40 us of one core, against ~10-50 us to start and join threads
// (OpenBLAS's own threshold, 64^3, is far lower and costs more than it gains on
// two cores, all the more when other processes share them).
constexpr double kThreadedWork = 4.0 * 1024 * 1024;
}  // namespace peft
