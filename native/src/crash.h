// A native stack on stderr when the process dies of SIGABRT, SIGBUS or SIGILL
// (crash.cc): heap corruption that glibc detects, a failed assertion, an
// instruction the CPU lacks. Installed once, when the addon loads.
#pragma once

namespace peft {
void installCrashReport();
}  // namespace peft
