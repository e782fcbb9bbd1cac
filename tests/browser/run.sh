#!/usr/bin/env bash
# tests/browser/run.sh BUILD_DIR [TEST] - the browser client and the demo
# pages (web/) in a real browser against a real holdfast server. TEST is a
# file of tests/browser/ (default browser.test.mjs; cors.test.mjs: a page
# on another origin).
#
# Installs what it needs when it is missing: Debian's chromium (apt-get, as
# root or through passwordless sudo, like scripts/deps.sh) and the npm
# package playwright-core, into BUILD_DIR/browser-cache (never a browser
# download of its own: Playwright drives /usr/bin/chromium). Then runs
# tests/browser/browser.test.mjs, which starts, kills and restarts the server
# itself and writes screenshots to BUILD_DIR/screenshots/.
#
# Exit: 0 passed, 1 failed, 77 cannot run here (no node/npm, or chromium or
# playwright-core could not be installed).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
CACHE=$BUILD/browser-cache
PW_VERSION=${HOLDFAST_PLAYWRIGHT_VERSION:-1.65.1}
CHROMIUM=${HOLDFAST_CHROMIUM:-/usr/bin/chromium}

skip() { echo "SKIP: $*" >&2; exit 77; }

command -v node >/dev/null || skip "node is not installed"
command -v npm >/dev/null || skip "npm is not installed"
[ -x "$BUILD/bin/holdfast" ] || { echo "FAIL: $BUILD/bin/holdfast missing" >&2; exit 1; }
mkdir -p "$CACHE"

# 1. Debian's chromium.
if [ ! -x "$CHROMIUM" ]; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo -n true 2>/dev/null || skip "chromium is missing and there is no root or sudo to install it"
        sudo="sudo -n"
    fi
    echo "browser: installing Debian's chromium" >&2
    export DEBIAN_FRONTEND=noninteractive
    if ! $sudo apt-get install -y -qq --no-install-recommends chromium >"$CACHE/apt.log" 2>&1; then
        $sudo apt-get update -qq >>"$CACHE/apt.log" 2>&1
        $sudo apt-get install -y -qq --no-install-recommends chromium >>"$CACHE/apt.log" 2>&1 ||
            { tail -20 "$CACHE/apt.log" >&2; skip "apt-get install chromium failed"; }
    fi
    [ -x "$CHROMIUM" ] || skip "chromium installed but $CHROMIUM is missing"
fi

# 2. playwright-core (the driver only; it never downloads a browser).
if ! node -e "require('$CACHE/node_modules/playwright-core/package.json')" 2>/dev/null; then
    echo "browser: installing playwright-core@$PW_VERSION into $CACHE" >&2
    [ -f "$CACHE/package.json" ] || echo '{"name":"holdfast-browser-cache","private":true}' >"$CACHE/package.json"
    (cd "$CACHE" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund \
        --loglevel=error "playwright-core@$PW_VERSION" >npm.log 2>&1) ||
        { tail -20 "$CACHE/npm.log" >&2; skip "npm install playwright-core failed"; }
fi

# 3. The test itself. NODE_PATH does not apply to ES modules, so the test
# imports playwright-core from the path it is given.
export HF_BIN="$BUILD/bin/holdfast"
export HF_WEB_ROOT="$ROOT/web"
export HF_TMP="$BUILD/browser-tmp"
export HF_SHOTS="$BUILD/screenshots"
export HF_PLAYWRIGHT="$CACHE/node_modules/playwright-core/index.mjs"
export HF_CHROMIUM="$CHROMIUM"
rm -rf "$HF_TMP"
mkdir -p "$HF_TMP" "$HF_SHOTS"
node "$ROOT/tests/browser/${2:-browser.test.mjs}"
