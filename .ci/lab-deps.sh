#!/bin/sh
# Install what `factoryctl lab` needs on a fresh Debian 12 machine (run as root).
# Idempotent and quiet: does nothing when everything is present, prints one line otherwise.
set -eu

# command -> package providing it
needs="mmdebstrap:mmdebstrap ip:iproute2 ssh:openssh-client ssh-keygen:openssh-client
unshare:util-linux nsenter:util-linux mount:mount mountpoint:util-linux pivot_root:util-linux
ps:procps"

missing=""
for pair in $needs; do
  cmd=${pair%%:*} pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || missing="$missing $pkg"
done
# The host image is checked with the Debian archive key; mmdebstrap depends on it, but a
# trimmed machine may still lack it.
[ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || missing="$missing debian-archive-keyring"

[ -n "$missing" ] || exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "lab-deps: needs root to install:$missing" >&2
  exit 1
fi
pkgs=$(printf '%s\n' $missing | sort -u | tr '\n' ' ')
echo "lab-deps: installing $pkgs"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# shellcheck disable=SC2086  # word splitting of the package list is intended
apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
