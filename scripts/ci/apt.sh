# Sourced by the install scripts in scripts/ci: `apt_get ARGS...` runs apt-get
# as root (sudo when not root), quietly, and waits for another apt or dpkg
# (unattended-upgrades, a parallel CI step, a user's `apt install`) to release
# its locks instead of failing at once, which left the native kernels unbuilt
# and the job silently on wasm. `install` waits by itself
# (DPkg::Lock::Timeout); `update` takes /var/lib/apt/lists/lock, which apt
# never waits for, so a failure to get a lock is retried until the deadline.
# APT_LOCK_WAIT: the seconds to wait in all (default 300).
APT_LOCK_WAIT=${APT_LOCK_WAIT:-300}
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

apt_get() {
  local deadline=$((SECONDS + APT_LOCK_WAIT)) out rc waited=""
  while :; do
    if out=$($SUDO apt-get -o DPkg::Lock::Timeout="$APT_LOCK_WAIT" "$@" 2>&1); then
      return 0
    else
      rc=$?
    fi
    if grep -qE 'Could not get lock|Unable to lock|Unable to acquire the dpkg frontend lock' <<<"$out" && [ "$SECONDS" -lt "$deadline" ]; then
      if [ -z "$waited" ]; then
        echo "${0##*/}: apt is busy (another apt or dpkg holds its lock): waiting up to ${APT_LOCK_WAIT}s" >&2
        waited=1
      fi
      sleep 2
      continue
    fi
    printf '%s\n' "$out" >&2
    return "$rc"
  done
}
