#!/usr/bin/env bash
# Installs Debian's OpenBLAS development package (libopenblas-dev: the library,
# its headers, and the libopenblas.so link the native addon links against) so
# that `npm ci` builds @peftjs/native (native/) and CI exercises the native
# kernels. Idempotent and quiet: does nothing when the package is installed.
# Needs a C++ compiler and make too (build-essential), which node-gyp uses.
set -euo pipefail
need=()
dpkg-query -W -f='${Status}' libopenblas-dev 2>/dev/null | grep -q 'install ok installed' || need+=(libopenblas-dev)
command -v g++ >/dev/null 2>&1 && command -v make >/dev/null 2>&1 || need+=(build-essential)
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
[ -e /usr/lib/x86_64-linux-gnu/libopenblas.so ] || [ -e /usr/lib/aarch64-linux-gnu/libopenblas.so ] || ldconfig -p | grep -q 'libopenblas\.so ' || {
  echo "install-openblas: libopenblas.so not found after installing libopenblas-dev" >&2
  exit 1
}
