#!/usr/bin/env bash
# Installs the Debian packages holdfast needs to build, run and test, when
# any are missing. Safe to run repeatedly: with everything present it only
# checks and exits. Runs apt-get through sudo when not root.
set -euo pipefail

pkgs=(build-essential cmake pkg-config
      libwebsockets-dev libnng-dev liblmdb-dev libmsgpack-dev libcmocka-dev
      libjansson-dev libjwt-dev libssl-dev liblua5.4-dev
      libev-dev libwebsockets-evlib-ev) # the gateway's loop: lws on libev

# Node.js runs the third-party interop tests (and, later, browser tests).
if ! command -v node >/dev/null 2>&1; then
    pkgs+=(nodejs npm)
fi

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done" >&2
