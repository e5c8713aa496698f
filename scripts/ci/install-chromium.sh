#!/usr/bin/env bash
# Installs Debian's chromium (and a font, for the report's PNG charts) for the
# `peft report` browser test (test/report.test.ts). Idempotent and quiet: does
# nothing when /usr/bin/chromium is already there. Never downloads a browser
# build of its own: Debian's package only. Waits for a busy apt (up to
# APT_LOCK_WAIT seconds, default 300; see apt.sh).
set -euo pipefail
if [ -x /usr/bin/chromium ] && fc-list 2>/dev/null | grep -qi 'dejavu\|liberation'; then
  exit 0
fi
# shellcheck source=scripts/ci/apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/apt.sh"
apt_get update -qq
apt_get install -y -qq chromium fonts-dejavu-core
/usr/bin/chromium --version >/dev/null 2>&1 || { echo "install-chromium: /usr/bin/chromium does not run" >&2; exit 1; }
