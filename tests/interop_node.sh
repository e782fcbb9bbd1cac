#!/usr/bin/env bash
# interop_node.sh - holdfast against a third-party WebSocket client (Node's
# `ws` package, tests/node/interop.mjs): the protocol must work for a
# client that shares no code with the server.
#   tests/interop_node.sh BUILD_DIR
# Exit: 0 passed, 1 failed, 77 cannot run here (no node/npm, npm failed).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/hf-interop.XXXXXX")
PID=
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
skip() { echo "SKIP: $*" >&2; exit 77; }
command -v node >/dev/null || skip "node is not installed"
command -v npm >/dev/null || skip "npm is not installed"

(cd "$TMP" && npm init -y >/dev/null 2>&1 &&
    npm install ws --no-audit --no-fund --loglevel=error >npm.log 2>&1) ||
    { cat "$TMP/npm.log" >&2; skip "npm install ws failed"; }
cp "$ROOT/tests/node/interop.mjs" "$TMP/"

"$BUILD/bin/holdfast" serve --listen 127.0.0.1:0 --data "$TMP/data" \
    2>"$TMP/server.log" &
PID=$!
PORT=
for _ in $(seq 200); do
    PORT=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' \
        "$TMP/server.log" | head -1)
    [ -n "$PORT" ] && break
    sleep 0.05
done
[ -n "$PORT" ] || { cat "$TMP/server.log" >&2; echo "FAIL: no server"; exit 1; }
(cd "$TMP" && node interop.mjs "$PORT") || { tail -20 "$TMP/server.log" >&2; exit 1; }
kill -TERM "$PID"; wait "$PID"; rc=$?; PID=
[ "$rc" -eq 0 ] || { echo "FAIL: server exited $rc" >&2; exit 1; }
echo "1 passed, 0 failed"
