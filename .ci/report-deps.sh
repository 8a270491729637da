#!/bin/sh
# Install what the report test needs to look at rendered pages on a fresh Debian 12 machine:
# headless Chromium and a font for its text. Idempotent and quiet: does nothing when both are
# present, prints one line otherwise. Exit 0 when ready; 1 when they are missing and cannot be
# installed (not root, or no apt) - the report's browser test then skips, saying so.
set -eu

missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing="$missing fonts-dejavu-core"

[ -n "$missing" ] || exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "report-deps: cannot install:$missing (needs root and apt-get)" >&2
  exit 1
fi
echo "report-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# shellcheck disable=SC2086  # word splitting of the package list is intended
apt-get install -y -qq --no-install-recommends $missing >/dev/null
