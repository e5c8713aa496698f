// Matrix products on oneDNN's sgemm when the addon was built with it
// (PEFT_HAVE_DNNL) and it wins for the product's shape, else on OpenBLAS's. A
// batch of products is split over the addon's threads (each product on one
// thread of its engine); a single product runs on all the engine's threads when
// it is large enough (kThreadedWork), else on one.
//
// Why oneDNN: on this AVX-512 Xeon its sgemm ran the products of a SAM or
// TinyViT step 10-20% faster than OpenBLAS 0.3.21's SkylakeX kernels on one
// thread, and 1.3-2x faster on two (OpenBLAS splits a product of a few hundred
// rows poorly over 2 threads), and two threads calling it at once do not
// serialise. OpenBLAS stays faster for the smallest products (its call costs
// less) and for LoRA's rank-4 products with a narrow output (docs/native.md,
// "Products on oneDNN"). PEFT_DNNL=0 at load turns oneDNN off.
#include "gemm.h"

#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "blas.h"
#include "parallel.h"
#include "simd.h"

namespace peft {
namespace {
enum class Engine { kBlas, kDnnl };

// OpenBLAS's current thread count as last set here (OpenBLAS keeps one process-wide count)
int gBlasThreads = -1;

#ifdef PEFT_HAVE_DNNL
// dnnl_version()->cpu_runtime values (dnnl_config.h)
constexpr unsigned kRuntimeSeq = 1, kRuntimeOmp = 2;

// Whether oneDNN runs products, decided once (at the first product or info()):
// it is linked, PEFT_DNNL is not 0, and its threads are ones we can count
// (OpenMP, whose per-thread count useDnnlThreads sets, or sequential).
struct DnnlState {
  bool on = false;
  // oneDNN before 3.11.2: its JIT sgemm kernels point rsp at a heap buffer
  // while they run, so a signal delivered to the thread then (Ctrl-C, a
  // profiler's SIGPROF, a child's SIGCHLD...) writes its frame into the heap,
  // which glibc later finds corrupt ("corrupted size vs. prev_size"; oneDNN
  // issue 4845, fixed by its PR 4855). Such a build runs its products with
  // the asynchronous signals blocked: they are delivered when it returns.
  bool blockSignals = false;
  // products on more than one thread split over the addon's threads, one oneDNN
  // thread each (else oneDNN's own OpenMP team: PEFT_DNNL=omp)
  bool split = true;
  std::string engine;
};

const DnnlState& dnnl() {
  static const DnnlState state = [] {
    DnnlState s;
    const dnnl_version_t* v = dnnl_version();
    char version[64];
    std::snprintf(version, sizeof version, "oneDNN %d.%d.%d", v->major, v->minor, v->patch);
    const char* env = std::getenv("PEFT_DNNL");
    if (env && std::strcmp(env, "0") == 0) {
      s.engine = std::string("OpenBLAS (") + version + " built in, turned off by PEFT_DNNL=0)";
    } else if ((v->cpu_runtime == kRuntimeOmp && omp_set_num_threads) || v->cpu_runtime == kRuntimeSeq) {
      s.on = true;
      s.split = !(env && std::strcmp(env, "omp") == 0 && v->cpu_runtime == kRuntimeOmp);
      s.engine = std::string(version) + (s.split ? " on the addon's threads" : " on its OpenMP threads") +
                 ", OpenBLAS for the smallest and rank-4 products";
      s.blockSignals = v->major < 3 || (v->major == 3 && (v->minor < 11 || (v->minor == 11 && v->patch < 2)));
      if (s.blockSignals) s.engine += " (signals held during its products: oneDNN before 3.11.2)";
    } else {
      s.engine = std::string("OpenBLAS (") + version + " built in, not used: its threads are not OpenMP's)";
    }
    return s;
  }();
  return state;
}

// The asynchronous signals blocked in the calling thread for its lifetime
// (restored after): all but those a fault raises synchronously in this thread
// (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS), which cannot wait.
class AsyncSignalsHeld {
 public:
  AsyncSignalsHeld() {
    static const sigset_t held = [] {
      sigset_t set;
      sigfillset(&set);
      for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS}) sigdelset(&set, sig);
      return set;
    }();
    pthread_sigmask(SIG_BLOCK, &held, &previous_);
  }
  ~AsyncSignalsHeld() { pthread_sigmask(SIG_SETMASK, &previous_, nullptr); }
  AsyncSignalsHeld(const AsyncSignalsHeld&) = delete;
  AsyncSignalsHeld& operator=(const AsyncSignalsHeld&) = delete;

 private:
  sigset_t previous_;
};

// oneDNN's sgemm, with the asynchronous signals held when its version needs it (DnnlState::blockSignals)
int dnnlProduct(bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  const char ta = transA ? 'T' : 'N', tb = transB ? 'T' : 'N';
  if (!dnnl().blockSignals) return dnnl_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  AsyncSignalsHeld held;
  return dnnl_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// The calling thread's OpenMP thread count as last set here (OpenMP keeps one per thread)
thread_local int tDnnlThreads = -1;

// Whether oneDNN runs a product of this shape on `threads` threads. Measured on
// the 190 product shapes of a SAM ViT and a TinyViT LoRA step (one call at a
// time, best of 5; docs/native.md): oneDNN was faster everywhere on 2 threads and
// on one thread from ~300k multiply-adds, except where the output is 4 columns
// wide (LoRA rank 4: x A, and A's gradient read transposed) or the inner size is
// 8 or less without B transposed, where OpenBLAS's small-matrix kernels took
// 30-60% less time.
bool dnnlWins(bool transA, bool transB, int64_t m, int64_t n, int64_t k, int threads) {
  const DnnlState& d = dnnl();
  if (!d.on) return false;
  if (threads > 1) return true;
  const double work = static_cast<double>(m) * n * k;
  if (work < 300e3) return false;
  if (n <= 4 && (transA || work < 1e6)) return false;
  if (k <= 8 && !transB) return false;
  return true;
}
#endif

Engine engineFor(bool transA, bool transB, int64_t m, int64_t n, int64_t k, int threads) {
#ifdef PEFT_HAVE_DNNL
  if (dnnlWins(transA, transB, m, n, k, threads)) return Engine::kDnnl;
#endif
  return Engine::kBlas;
}

void run(Engine e, bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
         const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    for (int64_t i = 0; i < m; i++) {
      float* row = c + i * ldc;
      if (beta == 0.0f) {
        std::fill(row, row + n, 0.0f);
      } else if (beta != 1.0f) {
        for (int64_t j = 0; j < n; j++) row[j] *= beta;
      }
    }
    return;
  }
#ifdef PEFT_HAVE_DNNL
  // a status other than success only for arguments that the callers' checks already rule out
  if (e == Engine::kDnnl && dnnlProduct(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) == 0) {
    return;
  }
#endif
  cblas_sgemm(kRowMajor, transA ? kTrans : kNoTrans, transB ? kTrans : kNoTrans, static_cast<int>(m),
              static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta,
              c, static_cast<int>(ldc));
}
}  // namespace

void useBlasThreads(int n) {
  if (n == gBlasThreads) return;
  openblas_set_num_threads(n);
  gBlasThreads = n;
}

void useDnnlThreads(int n) {
#ifdef PEFT_HAVE_DNNL
  if (n == tDnnlThreads || !omp_set_num_threads) return;
  omp_set_num_threads(n);
  tDnnlThreads = n;
#endif
}

const char* productEngine() {
#ifdef PEFT_HAVE_DNNL
  return dnnl().engine.c_str();
#else
  return "OpenBLAS";
#endif
}

void sgemmStrided(bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                  const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  const double work = static_cast<double>(m) * n * k;
  const int threads = work >= kThreadedWork ? threadCount() : 1;
  const Engine e = engineFor(transA, transB, m, n, k, threads);
#ifdef PEFT_HAVE_DNNL
  if (e == Engine::kDnnl && threads > 1 && dnnl().split) {
    // the rows of C (or its columns when it has few rows) in one slice per thread,
    // each a product on one oneDNN thread: the addon's pool is the only one that
    // runs (an idle OpenMP team sleeping beside it cost a wake-up of 25-50 us per
    // product, or a spinning core), and a part no worker has started yet runs on
    // the caller instead of waiting for a wake-up
    const bool byRows = m >= n || m >= 256;
    const int64_t size = byRows ? m : n;
    const int64_t parts = std::min<int64_t>(threads, std::max<int64_t>(1, size / 16));
    parallelFor(parts, 1, [&](int64_t p0, int64_t p1) {
      useDnnlThreads(1);
      for (int64_t p = p0; p < p1; p++) {
        // slices in multiples of 16 rows or columns (the kernels' blocking), the last takes the rest
        const int64_t lo = (size * p / parts) / 16 * 16;
        const int64_t hi = p + 1 == parts ? size : (size * (p + 1) / parts) / 16 * 16;
        if (hi <= lo) continue;
        if (byRows) {
          run(e, transA, transB, hi - lo, n, k, alpha, transA ? a + lo : a + lo * lda, lda, b, ldb, beta, c + lo * ldc,
              ldc);
        } else {
          run(e, transA, transB, m, hi - lo, k, alpha, a, lda, transB ? b + lo * ldb : b + lo, ldb, beta, c + lo, ldc);
        }
      }
    });
    return;
  }
#endif
  // only the engine that runs it gets the thread count (the other keeps its own)
  if (e == Engine::kDnnl) {
    useDnnlThreads(threads);
  } else {
    useBlasThreads(threads);
  }
  run(e, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void sgemmStridedOne(bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                     int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  const Engine e = engineFor(transA, transB, m, n, k, 1);
  if (e == Engine::kDnnl) useDnnlThreads(1);
  run(e, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void sgemm(bool transA, bool transB, int m, int n, int k, const float* a, const float* b, float beta, float* c) {
  sgemmStridedOne(transA, transB, m, n, k, 1.0f, a, transA ? m : k, b, transB ? k : n, beta, c, n);
}

void sgemmSized(bool transA, bool transB, int m, int n, int k, const float* a, const float* b, float beta, float* c) {
  sgemmStrided(transA, transB, m, n, k, 1.0f, a, transA ? m : k, b, transB ? k : n, beta, c, n);
}

// c[r, :] += bias for rows [r0, r1) of one m x n result: one IEEE addition an
// element after the product, so a fused bias equals the product then an Add
// (tf.add) to the bit (a bias given to the engine as C with beta 1 would join
// the sum before its last partial products)
static PEFT_CLONES void addBiasRows(float* __restrict c, const float* __restrict bias, int64_t n, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; r++) {
    float* row = c + r * n;
    for (int64_t j = 0; j < n; j++) row[j] = row[j] + bias[j];
  }
}

void batchGemm(const BatchGemm& g) {
  const int64_t mn = static_cast<int64_t>(g.m) * g.n;
  auto one = [&g, mn](int64_t i, bool sized) {
    float* c = g.c + i * mn;
    (sized ? sgemmSized : sgemm)(g.transA, g.transB, g.m, g.n, g.k, g.a + g.aOff[i], g.b + g.bOff[i], 0.0f, c);
    if (g.bias && !sized) addBiasRows(c, g.bias, g.n, 0, g.m);
  };
  const double work = static_cast<double>(g.m) * g.n * g.k;
  if (g.batch > 1 && threadCount() > 1 && work * g.batch >= kThreadedWork) {
    // a batch: its matrices split over the threads, each product on one thread of
    // its engine (one start and join per batch rather than one per product)
    useBlasThreads(1);
    const int64_t grain = std::max<int64_t>(1, static_cast<int64_t>(kThreadedWork / 2 / std::max(1.0, work)));
    parallelFor(g.batch, grain, [&one](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; i++) one(i, false);
    });
    return;
  }
  for (int64_t i = 0; i < g.batch; i++) one(i, true);
  if (g.bias) {
    // after the (possibly threaded) products, the rows over the threads
    const int64_t rows = static_cast<int64_t>(g.batch) * g.m;
    const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(1, g.n));
    parallelFor(rows, grain, [&g](int64_t r0, int64_t r1) { addBiasRows(g.c, g.bias, g.n, r0, r1); });
  }
}
}  // namespace peft
