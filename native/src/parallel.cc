// The pool behind parallelFor (parallel.h). A call publishes its job (fn, n,
// step, parts) and a ticket = (job number << 32 | next part), wakes the
// workers, runs part 0, and then claims further parts until none is left. A
// worker claims a part with a compare-and-swap on the ticket (which also holds
// the job's part count), which fails once the job is another one, so a worker
// that wakes late never runs a part of a job that has finished. The partition is the same whoever runs the parts.
// The caller never waits for a worker to wake up: on this 2-vCPU VM waking a
// sleeping thread takes 25-50 us, more than a small kernel's whole run, so a
// part nobody has started is run by the caller. It then waits only for parts
// being run (spinning: they are running; yielding after kSpin in case their
// thread was preempted).
//
// An idle worker spins for kSpin, then sleeps on the condition variable; the
// caller notifies under the mutex when a worker sleeps, and a worker checks
// for a new job under the same mutex before it sleeps: no lost wakeups.
//
// One call uses the pool at a time (`busy`): a call made while it is busy — a
// part calling parallelFor (nested), or another thread — runs inline, fn(0, n).
// The pool is never destroyed and its threads are detached, so nothing waits
// on them at exit.
#include "parallel.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace peft {
namespace {
using Fn = std::function<void(int64_t, int64_t)>;
using Clock = std::chrono::steady_clock;

// How long an idle worker spins before it sleeps, and how long the caller
// spins on running parts before it yields: the kernels of a training step
// follow each other within tens of microseconds, and a sleeping worker takes
// 25-50 us to wake; spinning longer would hold a core that others need.
constexpr std::chrono::microseconds kSpin(30);

inline void relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

// Spins until done() or kSpin has passed, yielding between rounds; returns done().
template <class Done>
bool spinUntil(Done done) {
  const auto until = Clock::now() + kSpin;
  for (;;) {
    for (int i = 0; i < 32; i++) {
      if (done()) return true;
      relax();
    }
    if (Clock::now() >= until) return done();
    // let a thread waiting for this CPU run: a woken worker placed on the caller's CPU (the other one
    // busy) otherwise spun there for kSpin while the caller waited, 30-40 us a call on this VM
    std::this_thread::yield();
  }
}

class Pool {
 public:
  // Runs the parts [p * step, min(n, (p + 1) * step)) of p < parts; false when the pool is busy.
  bool run(int parts, int64_t n, int64_t step, const Fn& fn) {
    if (busy_.exchange(true, std::memory_order_acquire)) return false;
    while (workers_ < parts - 1) {
      std::thread(&Pool::loop, this).detach();
      workers_++;
    }
    fn_ = &fn;
    n_ = n;
    step_ = step;
    done_.store(0, std::memory_order_relaxed);
    const uint64_t job = ((ticket_.load(std::memory_order_relaxed) >> 32) + 1) & 0xffffffffu;
    // publishes the fields above; part 0 is ours
    ticket_.store(job << 32 | static_cast<uint64_t>(parts) << 16 | 1, std::memory_order_release);
    bool sleeping;
    {
      std::lock_guard<std::mutex> lock(mu_);
      sleeping = sleepers_ > 0;
    }
    // after unlocking, so that a woken worker does not block on mu_ straight away
    if (sleeping) cv_.notify_all();
    fn(0, std::min(n, step));
    done_.fetch_add(1, std::memory_order_relaxed);
    int ran = 1;
    while (claimAndRun(job)) ran++;
    const int all = parts;
    auto finished = [this, all] { return done_.load(std::memory_order_acquire) == all; };
    if (ran < parts && !spinUntil(finished)) {
      while (!finished()) std::this_thread::yield();
    }
    busy_.store(false, std::memory_order_release);
    return true;
  }

 private:
  // Claims the next part of `job` and runs it; false when the job has no part left (or is over). The
  // job's part count is in the ticket, so that the check and the claim see the same job.
  bool claimAndRun(uint64_t job) {
    uint64_t t = ticket_.load(std::memory_order_acquire);
    for (;;) {
      if ((t >> 32) != job || (t & 0xffff) >= ((t >> 16) & 0xffff)) return false;
      if (ticket_.compare_exchange_weak(t, t + 1, std::memory_order_acq_rel, std::memory_order_acquire)) break;
    }
    // the job cannot finish (nor its fields change) before this part is counted done
    const int64_t begin = static_cast<int64_t>(t & 0xffff) * step_;
    (*fn_)(begin, std::min(n_, begin + step_));
    done_.fetch_add(1, std::memory_order_acq_rel);
    return true;
  }

  void loop() {
    uint64_t seen = 0;
    auto posted = [this, &seen] { return (ticket_.load(std::memory_order_acquire) >> 32) != seen; };
    for (;;) {
      if (!spinUntil(posted)) {
        std::unique_lock<std::mutex> lock(mu_);
        sleepers_++;
        cv_.wait(lock, posted);
        sleepers_--;
      }
      seen = ticket_.load(std::memory_order_acquire) >> 32;
      while (claimAndRun(seen)) {
      }
    }
  }

  std::atomic<bool> busy_{false};
  int workers_ = 0;  // threads started, by the call holding busy_
  // the job, written by the call holding busy_ before the ticket publishes it
  const Fn* fn_ = nullptr;
  int64_t n_ = 0;
  int64_t step_ = 0;
  std::atomic<uint64_t> ticket_{0};  // job number << 32 | parts << 16 | next part to claim
  std::atomic<int> done_{0};         // parts of the job finished
  std::mutex mu_;
  std::condition_variable cv_;
  int sleepers_ = 0;  // under mu_
};

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: its detached workers outlive static destruction
  return *p;
}

std::atomic<int> gThreads{1};
constexpr int64_t kMaxParts = 0xffff;  // the ticket's part fields are 16 bits
}  // namespace

int threadCount() { return gThreads.load(std::memory_order_relaxed); }

void setThreadCount(int n) { gThreads.store(std::max(1, n), std::memory_order_relaxed); }

void parallelFor(int64_t n, int64_t grain, const Fn& fn) {
  if (n <= 0) return;
  const int64_t maxParts = std::max<int64_t>(1, n / std::max<int64_t>(1, grain));
  int parts = static_cast<int>(std::min<int64_t>({threadCount(), maxParts, kMaxParts}));
  const int64_t step = (n + parts - 1) / std::max(1, parts);
  parts = static_cast<int>((n + step - 1) / step);  // no empty parts
  if (parts <= 1 || !pool().run(parts, n, step, fn)) fn(0, n);
}
}  // namespace peft
