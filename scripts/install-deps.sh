#!/usr/bin/env bash
# Installs the Debian 12 packages zmr needs to build, test and run its demo, if any are missing.
# Needs root (or sudo). Safe to run repeatedly: does nothing when everything is present.
set -euo pipefail

PACKAGES=(
  g++ cmake make pkg-config
  libzmq3-dev cppzmq-dev libmsgpack-cxx-dev libspdlog-dev doctest-dev libcxxopts-dev
  python3 python3-zmq python3-msgpack
  "$@"
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "install-deps: missing packages (${missing[*]}) and not root; run as root" >&2
    exit 1
  fi
fi
echo "install-deps: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
