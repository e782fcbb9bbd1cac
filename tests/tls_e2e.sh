#!/usr/bin/env bash
# tls_e2e.sh - holdfast serving https:// and wss:// with a self-signed
# certificate made here with openssl: curl --cacert, the CLI (trusting the
# certificate through SSL_CERT_FILE, or --insecure), Node's `ws` with the
# certificate as CA (skipped when npm cannot install ws); a missing or
# mismatched certificate refuses to start with a clear message.
#   tests/tls_e2e.sh BUILD_DIR
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
HF="$BUILD/bin/holdfast"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/hf-tls.XXXXXX")
PID=
fails=0
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
# Under ThreadSanitizer: glibc's mktime as lws calls it (see the file).
export TSAN_OPTIONS="${TSAN_OPTIONS:-} suppressions=$ROOT/tests/tsan-tls.supp"

cd "$TMP" || exit 1
openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem \
    -days 2 -subj /CN=localhost \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" 2>/dev/null ||
    { echo "FAIL: openssl cannot make a certificate"; exit 1; }
openssl req -x509 -newkey rsa:2048 -nodes -keyout other.pem -out other.crt \
    -days 2 -subj /CN=other 2>/dev/null

# Refusals first: each must exit non-zero and say why.
refuses() { # WHY-REGEX ARGS...
    local want=$1
    shift
    if "$HF" serve --listen 127.0.0.1:0 --data "$TMP/refused" "$@" \
        >refuse.log 2>&1; then
        fail "started with $*"
    elif ! grep -q "$want" refuse.log; then
        fail "no clear reason for $*: $(tail -2 refuse.log)"
    fi
}
refuses "certificate nope.pem: No such file" --tls-cert nope.pem --tls-key key.pem
refuses "key missing.pem: No such file" --tls-cert cert.pem --tls-key missing.pem
refuses "certificate key.pem" --tls-cert key.pem --tls-key key.pem
refuses "does not match the certificate" --tls-cert cert.pem --tls-key other.pem
refuses "needs both" --tls-cert cert.pem

"$HF" serve --listen 127.0.0.1:0 --data "$TMP/data" --tls-cert cert.pem \
    --tls-key key.pem 2>server.log &
PID=$!
PORT=
for _ in $(seq 600); do
    PORT=$(sed -n 's/.*listening on https:\/\/127.0.0.1:\([0-9]*\).*/\1/p' \
        server.log | head -1)
    [ -n "$PORT" ] && break
    sleep 0.05
done
[ -n "$PORT" ] || { cat server.log >&2; echo "FAIL: no server"; exit 1; }
U=https://127.0.0.1:$PORT

out=$(curl -sS --cacert cert.pem "$U/healthz") || fail "curl --cacert: $out"
[ "$out" = '{"ok":true}' ] || fail "healthz over https: $out"
out=$(curl -sS --cacert cert.pem -X POST "$U/v1/publish" \
    -d '[{"channel":"c","type":"t","data":1},{"channel":"c","type":"t"}]')
echo "$out" | grep -q '"results":\[{"ok":true,"result":{"seq":1}},{"ok":true,"result":{"seq":2}}\]' ||
    fail "publish over https: $out"
curl -sS "$U/healthz" >/dev/null 2>&1 && fail "curl trusted an unknown certificate"
curl -sS --cacert other.crt "$U/healthz" >/dev/null 2>&1 &&
    fail "curl trusted the wrong CA"
curl -sS --max-time 5 "http://127.0.0.1:$PORT/healthz" 2>/dev/null |
    grep -q ok && fail "plain http served on the TLS port"

out=$(SSL_CERT_FILE=cert.pem "$HF" call counter/x incr --url "wss://127.0.0.1:$PORT")
[ "$out" = '{"value":1}' ] || fail "holdfast call wss:// with the CA: $out"
out=$("$HF" call counter/x incr --url "wss://127.0.0.1:$PORT" --insecure)
[ "$out" = '{"value":2}' ] || fail "holdfast call wss:// --insecure: $out"
"$HF" call counter/x incr --url "wss://127.0.0.1:$PORT" 2>err.txt >/dev/null &&
    fail "holdfast call trusted an unknown certificate"
grep -q "certificate is not trusted" err.txt || fail "untrusted: $(cat err.txt)"
out=$(SSL_CERT_FILE=cert.pem timeout 8 "$HF" tail channel/c --since 0 \
    --url "wss://127.0.0.1:$PORT" 2>/dev/null | head -2 | grep -c '"seq"')
[ "$out" = 2 ] || fail "holdfast tail wss:// --since 0: $out events"

if command -v node >/dev/null && command -v npm >/dev/null &&
    (npm init -y >/dev/null 2>&1 &&
        npm install ws --no-audit --no-fund --loglevel=error >npm.log 2>&1); then
    cp "$ROOT/tests/node/tls.mjs" .
    node tls.mjs "$PORT" cert.pem || fail "node ws over wss://"
else
    echo "SKIP: node ws part (node, npm or the ws package unavailable)" >&2
fi

kill -TERM "$PID"
wait "$PID"
rc=$?
PID=
[ "$rc" -eq 0 ] || fail "server exited $rc"
[ "$fails" -eq 0 ] || { tail -5 server.log >&2; exit 1; }
echo "tls_e2e: passed"
