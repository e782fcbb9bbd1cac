#!/usr/bin/env bash
# tests/clients/python.sh BUILD_DIR - clients/python/holdfast.py against a
# real server (clients/python/test_holdfast.py). Installs Debian's
# python3-websockets when missing (as root or with passwordless sudo) and
# runs the tests with a Python that imports it (python3, else
# /usr/bin/python3: Debian's package is for the system Python).
# Exit: 0 passed, 1 failed, 77 cannot run here.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
skip() { echo "SKIP: $*" >&2; exit 77; }
[ -x "$BUILD/bin/holdfast" ] || { echo "FAIL: $BUILD/bin/holdfast missing" >&2; exit 1; }

pick() {
    for py in python3 /usr/bin/python3; do
        command -v "$py" >/dev/null && "$py" -c 'import websockets' 2>/dev/null && { echo "$py"; return 0; }
    done
    return 1
}
PY=$(pick)
if [ -z "$PY" ]; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo -n true 2>/dev/null || skip "python3-websockets is missing and there is no root or sudo to install it"
        sudo="sudo -n"
    fi
    echo "python: installing Debian's python3-websockets" >&2
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y -qq --no-install-recommends python3-websockets >/dev/null 2>&1 ||
        { $sudo apt-get update -qq >/dev/null 2>&1; $sudo apt-get install -y -qq --no-install-recommends python3-websockets >/dev/null 2>&1; } ||
        skip "apt-get install python3-websockets failed"
    PY=$(pick) || skip "python3-websockets installed but no python3 imports it"
fi

export HF_BIN="$BUILD/bin/holdfast" HF_TMP="$BUILD/clients-python-tmp"
rm -rf "$HF_TMP"; mkdir -p "$HF_TMP"
echo "python: $("$PY" --version), websockets $("$PY" -c 'import websockets; print(websockets.__version__)')"
exec "$PY" -B "$ROOT/clients/python/test_holdfast.py" -v
