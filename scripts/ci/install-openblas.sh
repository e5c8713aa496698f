#!/usr/bin/env bash
# Installs Debian's OpenBLAS development package (libopenblas-dev: the library,
# its headers, and the libopenblas.so link the native addon links against) so
# that `npm ci` builds @peftjs/native (native/) and CI exercises the native
# kernels. Idempotent and quiet: does nothing when the package is installed.
# Needs a C++ compiler and make too (build-essential), which node-gyp uses.
# Waits for a busy apt (up to APT_LOCK_WAIT seconds, default 300; see apt.sh).
set -euo pipefail
need=()
dpkg-query -W -f='${Status}' libopenblas-dev 2>/dev/null | grep -q 'install ok installed' || need+=(libopenblas-dev)
command -v g++ >/dev/null 2>&1 && command -v make >/dev/null 2>&1 || need+=(build-essential)
[ ${#need[@]} -eq 0 ] && exit 0
# shellcheck source=scripts/ci/apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/apt.sh"
apt_get update -qq
apt_get install -y -qq --no-install-recommends "${need[@]}"
[ -e /usr/lib/x86_64-linux-gnu/libopenblas.so ] || [ -e /usr/lib/aarch64-linux-gnu/libopenblas.so ] || ldconfig -p | grep -q 'libopenblas\.so ' || {
  echo "install-openblas: libopenblas.so not found after installing libopenblas-dev" >&2
  exit 1
}
