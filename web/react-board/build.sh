#!/usr/bin/env bash
# web/react-board/build.sh OUT - makes OUT a web root serving everything of
# web/ (symlinks) plus this React demo bundled with esbuild: app.js (React
# 19) and app-react18.js (React 18), development builds so that StrictMode
# runs its double effects. npm packages come from BUILD/clients-npm
# (tests/clients/npm_deps.sh installs them; BUILD defaults to OUT/..).
# Then: holdfast serve --web-root OUT, and open /react-board/.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:?usage: build.sh OUT}
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
BUILD=${HF_BUILD:-$(dirname "$OUT")}
bash "$ROOT/tests/clients/npm_deps.sh" "$BUILD" >&2
NPM=$BUILD/clients-npm
for f in "$ROOT"/web/*; do
    b=$(basename "$f")
    [ "$b" = react-board ] && continue
    ln -sfn "$f" "$OUT/$b"
done
mkdir -p "$OUT/react-board" "$OUT/.link"
ln -sfn "$ROOT/web/react-board/index.html" "$OUT/react-board/index.html"
ln -sfn "$ROOT/clients/js" "$OUT/.link/holdfast-client"
for v in 19 18; do
    suffix=""; [ "$v" = 18 ] && suffix="-react18"
    NODE_PATH="$NPM/react$v/node_modules:$OUT/.link" "$NPM/tools/node_modules/.bin/esbuild" \
        "$ROOT/web/react-board/app.jsx" --bundle --format=esm --jsx=automatic \
        --define:process.env.NODE_ENV='"development"' --log-level=warning \
        --outfile="$OUT/react-board/app$suffix.js"
done
echo "react-board: built into $OUT/react-board (serve $OUT)" >&2
