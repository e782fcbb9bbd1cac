#!/usr/bin/env bash
# tests/clients/react.sh BUILD_DIR - the React waiting board (web/react-board)
# in Debian's chromium: bundles it with esbuild (React 19 and 18) into
# BUILD_DIR/react-web, then runs tests/clients/react_board.test.mjs through
# the browser harness (tests/browser/run.sh: chromium, playwright-core).
# Exit: 0 passed, 1 failed, 77 cannot run here.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
command -v node >/dev/null || { echo "SKIP: node is not installed" >&2; exit 77; }
bash "$ROOT/tests/clients/npm_deps.sh" "$BUILD" || exit $?
rm -rf "$BUILD/react-web"
HF_BUILD=$BUILD bash "$ROOT/web/react-board/build.sh" "$BUILD/react-web" || { echo "FAIL: bundling the React demo" >&2; exit 1; }
# the hooks test fixture (tests/clients/hooks_app.jsx), React 19 and 18
mkdir -p "$BUILD/react-web/hooks-test"
echo '<!doctype html><meta charset="utf-8"><div id="root"></div><script type="module">import(new URLSearchParams(location.search).get("react") === "18" ? "./app-react18.js" : "./app.js");</script>' \
    >"$BUILD/react-web/hooks-test/index.html"
for v in 19 18; do
    suffix=""; [ "$v" = 18 ] && suffix="-react18"
    NODE_PATH="$BUILD/clients-npm/react$v/node_modules:$BUILD/react-web/.link" "$BUILD/clients-npm/tools/node_modules/.bin/esbuild" \
        "$ROOT/tests/clients/hooks_app.jsx" --bundle --format=esm --jsx=automatic \
        --define:process.env.NODE_ENV='"development"' --log-level=warning \
        --outfile="$BUILD/react-web/hooks-test/app$suffix.js" || { echo "FAIL: bundling the hooks fixture" >&2; exit 1; }
done
HF_WEB_ROOT=$BUILD/react-web exec bash "$ROOT/tests/browser/run.sh" "$BUILD" ../clients/react_board.test.mjs
