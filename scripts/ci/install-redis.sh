#!/usr/bin/env bash
# Installs Debian's redis-server for the queue test (test/sweep-queue.test.ts),
# which starts its own redis-server on a free loopback port in a temp folder.
# The binary only: the package's system service (port 6379) is kept from
# starting during the install (a policy-rc.d that denies it, the way Debian's
# container images do), and one that runs anyway is stopped and disabled, so
# nothing listens after this script. Idempotent: does nothing when
# /usr/bin/redis-server is there. Waits for a busy apt (up to APT_LOCK_WAIT
# seconds, default 300; see apt.sh).
set -euo pipefail
if [ -x /usr/bin/redis-server ]; then
  exit 0
fi
# shellcheck source=scripts/ci/apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/apt.sh"
policy=/usr/sbin/policy-rc.d
made_policy=""
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# install-redis.sh: no service starts while it installs\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 755 "$policy"
  made_policy=1
fi
cleanup() { if [ -n "$made_policy" ]; then $SUDO rm -f "$policy"; fi; }
trap cleanup EXIT
apt_get update -qq
apt_get install -y -qq --no-install-recommends redis-server
# A service that started all the same (a systemd machine ignores policy-rc.d):
# stop it and keep it from starting at boot.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  $SUDO systemctl disable --now redis-server >/dev/null 2>&1 || true
else
  $SUDO service redis-server stop >/dev/null 2>&1 || true
  $SUDO update-rc.d redis-server disable >/dev/null 2>&1 || true
fi
/usr/bin/redis-server --version >/dev/null 2>&1 || { echo "install-redis: /usr/bin/redis-server does not run" >&2; exit 1; }
echo "install-redis: installed $(/usr/bin/redis-server --version | cut -d' ' -f1-3) (the binary only: its system service is not running)"
