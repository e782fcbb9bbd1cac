#!/usr/bin/env bash
# Runs one libFuzzer target of tests/fuzz and prints its figures.
#
#   scripts/fuzz.sh TARGET [SECONDS | -runs=N] [libFuzzer flags...]
#
# TARGET is a name from tests/fuzz (wire, env, json, auth, wbatch, http...);
# build the targets first with `make fuzz`. The run starts from the
# committed seeds (tests/fuzz/corpus/TARGET, never written to) and grows
# its own corpus in build-fuzz/corpus/TARGET, kept between runs; crashes
# and other findings go to build-fuzz/artifacts/. The default is 60
# seconds. Everything libFuzzer prints is also kept in the log file named
# at the end (FUZZ_LOG=path chooses it), followed by the figures: runs,
# exec/s, coverage, corpus and findings.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 1 ]; then
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
target=$1
shift
limit=(-max_total_time=60)
if [ $# -gt 0 ]; then
    case $1 in
    -runs=*) limit=("$1"); shift ;;
    [0-9]*) limit=(-max_total_time="$1"); shift ;;
    esac
fi

bin=build-fuzz/bin/fuzz_$target
seeds=tests/fuzz/corpus/$target
corpus=build-fuzz/corpus/$target
arts=build-fuzz/artifacts
if [ ! -x "$bin" ]; then
    echo "fuzz.sh: no $bin; build the targets with 'make fuzz'" >&2
    exit 2
fi
mkdir -p "$corpus" "$arts" build-fuzz/logs
log=${FUZZ_LOG:-build-fuzz/logs/$target-$(date +%Y%m%d-%H%M%S).log}

# Per target: longest input, and the extras a slow, threaded one needs.
flags=(-print_final_stats=1 -artifact_prefix="$arts/$target-")
case $target in
auth) flags+=(-max_len=10000) ;;
http) flags+=(-max_len=8192 -timeout=120 -detect_leaks=0) ;;
stored) flags+=(-timeout=120) ;;
esac
if [ -f "tests/fuzz/dict/$target.dict" ]; then
    flags+=(-dict="tests/fuzz/dict/$target.dict")
fi

before=$(ls "$arts" | grep -c "^$target-" || true)
set +e
"$bin" "${flags[@]}" "${limit[@]}" "$@" "$corpus" "$seeds" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
after=$(ls "$arts" | grep -c "^$target-" || true)

# The figures, from libFuzzer's own last lines.
last=$(grep -E '^#[0-9]+.*(cov|ft): ' "$log" | tail -n 1 || true)
field() { sed -nE "s/.* $1: ([^ ]+).*/\1/p" <<<"$last"; }
runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -n 1)
rate=$(sed -nE 's/^stat::average_exec_per_sec: *([0-9]+).*/\1/p' "$log" | tail -n 1)
secs=$(sed -nE 's/^Done [0-9]+ runs in ([0-9]+) second.*/\1/p' "$log" | tail -n 1)
cat <<EOF | tee -a "$log"
fuzz.sh: target $target, exit status $status
fuzz.sh: runs ${runs:-?} in ${secs:-?} s, ${rate:-?} exec/s
fuzz.sh: cov $(field cov) ft $(field ft) corp $(field corp)
fuzz.sh: corpus dir $corpus holds $(ls "$corpus" | wc -l) inputs
fuzz.sh: findings this run: $((after - before)) (in $arts/$target-*)
fuzz.sh: log $log
EOF
exit "$status"
