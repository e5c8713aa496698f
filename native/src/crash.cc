// A crash report for the fatal signals that the C library raises itself
// (crash.h). glibc aborts a process whose heap it finds corrupt ("corrupted
// size vs. prev_size", "double free or corruption") with one line and no
// stack, and so does a failed assertion; the culprit is then unknown. The
// handler prints the thread's native stack to stderr first, then lets the
// signal do what it did before (the previous handler, or the default action,
// re-raised).
//
// Only SIGABRT, SIGBUS and SIGILL: V8 owns SIGSEGV (its WebAssembly bounds
// checks are SIGSEGV traps that it handles and resumes), and Node owns the
// others it uses.
#include "crash.h"

#include <execinfo.h>
#include <signal.h>
#include <unistd.h>

#include <cstring>

namespace peft {
namespace {
constexpr int kSignals[] = {SIGABRT, SIGBUS, SIGILL};
struct sigaction gPrevious[sizeof(kSignals) / sizeof(kSignals[0])];

// write(2) of a C string: async-signal-safe, unlike stdio
void say(const char* text) {
  ssize_t ignored = write(STDERR_FILENO, text, std::strlen(text));
  (void)ignored;
}

void onFatal(int sig) {
  say(sig == SIGABRT ? "\npeftjs native: SIGABRT" : sig == SIGBUS ? "\npeftjs native: SIGBUS" : "\npeftjs native: SIGILL");
  say("; the native stack of the thread that raised it (report it with the lines above):\n");
  void* frames[64];
  const int n = backtrace(frames, 64);
  backtrace_symbols_fd(frames, n, STDERR_FILENO);
  for (size_t i = 0; i < sizeof(kSignals) / sizeof(kSignals[0]); i++) {
    if (kSignals[i] != sig) continue;
    sigaction(sig, &gPrevious[i], nullptr);
  }
  raise(sig);
}
}  // namespace

void installCrashReport() {
  static bool installed = false;
  if (installed) return;
  installed = true;
  // backtrace() loads libgcc's unwinder at its first call, which allocates: done here, not in the handler
  void* warm[2];
  backtrace(warm, 2);
  for (size_t i = 0; i < sizeof(kSignals) / sizeof(kSignals[0]); i++) {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_handler = onFatal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND | SA_NODEFER;
    sigaction(kSignals[i], &sa, &gPrevious[i]);
  }
}
}  // namespace peft
