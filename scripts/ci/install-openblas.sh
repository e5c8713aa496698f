#!/usr/bin/env bash
# Installs Debian's OpenBLAS development package (libopenblas-dev: the library,
# its headers, and the libopenblas.so link the native addon links against) so
# that `npm ci` builds @peftjs/native (native/) and CI exercises the native
# kernels. Idempotent and quiet: does nothing when the packages are installed.
# Needs a C++ compiler and make too (build-essential), which node-gyp uses.
# Then oneDNN (libdnnl-dev), optional: the addon runs its matrix products on
# oneDNN's sgemm when it is there (docs/native.md, "Products on oneDNN"), on
# OpenBLAS alone otherwise, so a failure to get it is a warning, not an error
# (PEFT_DNNL=0 skips it).
# Waits for a busy apt (up to APT_LOCK_WAIT seconds, default 300; see apt.sh).
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
need=()
installed libopenblas-dev || need+=(libopenblas-dev)
command -v g++ >/dev/null 2>&1 && command -v make >/dev/null 2>&1 || need+=(build-essential)
want_dnnl=""
[ "${PEFT_DNNL:-}" = "0" ] || installed libdnnl-dev || want_dnnl=1
[ ${#need[@]} -eq 0 ] && [ -z "$want_dnnl" ] && exit 0
# shellcheck source=scripts/ci/apt.sh
. "$here/apt.sh"
if [ ${#need[@]} -gt 0 ]; then
  apt_get update -qq
  apt_get install -y -qq --no-install-recommends "${need[@]}"
  [ -e /usr/lib/x86_64-linux-gnu/libopenblas.so ] || [ -e /usr/lib/aarch64-linux-gnu/libopenblas.so ] || ldconfig -p | grep -q 'libopenblas\.so ' || {
    echo "install-openblas: libopenblas.so not found after installing libopenblas-dev" >&2
    exit 1
  }
fi
if [ -n "$want_dnnl" ]; then
  [ ${#need[@]} -gt 0 ] || apt_get update -qq 2>/dev/null || true
  apt_get install -y -qq --no-install-recommends libdnnl-dev 2>/dev/null ||
    echo "install-openblas: libdnnl-dev (oneDNN) could not be installed: the native addon runs its products on OpenBLAS alone" >&2
fi
