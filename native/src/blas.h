// The few CBLAS / OpenBLAS entry points the addon uses, declared here rather
// than through <cblas.h>: Debian's cblas.h is an "alternatives" link that may
// point at another BLAS's header, while the library linked is always OpenBLAS.
// Debian's libopenblas0 uses 32-bit integers (the 64-bit-index build is the
// separate libopenblas64-0 package).
#pragma once

extern "C" {
void cblas_sgemm(int order, int transA, int transB, int m, int n, int k, float alpha, const float* a, int lda,
                 const float* b, int ldb, float beta, float* c, int ldc);
void openblas_set_num_threads(int n);
int openblas_get_num_threads(void);
char* openblas_get_config(void);
char* openblas_get_corename(void);
int openblas_get_parallel(void);
}

namespace peft {
constexpr int kRowMajor = 101;
constexpr int kNoTrans = 111;
constexpr int kTrans = 112;

// C[m, n] = op(A) op(B) + beta C, row-major, packed (lda/ldb from the shapes).
// Handles empty sizes without calling BLAS (which would reject ld = 0). Safe to
// call from the addon's worker threads: it runs with whatever thread count
// OpenBLAS has at the moment (set only from the JS thread).
void sgemm(bool transA, bool transB, int m, int n, int k, const float* a, const float* b, float beta, float* c);

// The same from the JS thread, with OpenBLAS's threads set for its size: one
// thread below kThreadedWork multiply-adds, all of them above.
void sgemmSized(bool transA, bool transB, int m, int n, int k, const float* a, const float* b, float beta, float* c);

// Sets OpenBLAS's thread count (JS thread only; no call when it is already that).
void useBlasThreads(int n);

// Multiply-adds from which a product (or a batch of them) is worth splitting
// over threads: ~40 us of one core, against ~10-50 us to start and join threads
// (OpenBLAS's own threshold, 64^3, is far lower and costs more than it gains on
// two cores, all the more when other processes share them).
constexpr double kThreadedWork = 4.0 * 1024 * 1024;
}  // namespace peft
