#!/usr/bin/env bash
# tests/clients/npm_deps.sh BUILD_DIR - installs, when missing, the npm
# packages the client tests need into BUILD_DIR/clients-npm (never into
# the source tree; nothing here is committed):
#   tools/    typescript, esbuild, ws, @types/react (for tsc on react.d.ts)
#   react18/  react@18, react-dom@18
#   react19/  react@19, react-dom@19
# Exit: 0 ready, 77 cannot (no npm, or the registry is unreachable).
set -u
BUILD=$(cd "${1:?BUILD_DIR}" && pwd)
DIR=$BUILD/clients-npm
skip() { echo "SKIP: $*" >&2; exit 77; }
command -v npm >/dev/null || skip "npm is not installed"

# folder, then the packages (name@range) it must hold
need() {
    local d=$DIR/$1; shift
    mkdir -p "$d"
    [ -f "$d/package.json" ] || echo '{"name":"holdfast-client-test-deps","private":true}' >"$d/package.json"
    local missing=()
    for p in "$@"; do
        local name=${p%@*}
        [ -f "$d/node_modules/$name/package.json" ] || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "clients: npm install ${missing[*]} into $d" >&2
    (cd "$d" && npm install --no-audit --no-fund --loglevel=error "${missing[@]}" >npm.log 2>&1) ||
        { tail -20 "$d/npm.log" >&2; skip "npm install ${missing[*]} failed"; }
}

need tools typescript@5 esbuild@0.25 ws@8 @types/react@19 @types/react-dom@19
need react18 react@18 react-dom@18
need react19 react@19 react-dom@19
exit 0
