#!/usr/bin/env bash
# Installs Debian's chromium (and a font, for the report's PNG charts) for the
# `peft report` browser test (test/report.test.ts). Idempotent and quiet: does
# nothing when /usr/bin/chromium is already there. Never downloads a browser
# build of its own: Debian's package only.
set -euo pipefail
if [ -x /usr/bin/chromium ] && fc-list 2>/dev/null | grep -qi 'dejavu\|liberation'; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
/usr/bin/chromium --version >/dev/null 2>&1 || { echo "install-chromium: /usr/bin/chromium does not run" >&2; exit 1; }
