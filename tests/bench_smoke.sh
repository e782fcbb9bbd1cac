#!/usr/bin/env bash
# bench_smoke.sh - every holdfast-bench scenario at a tiny scale against a
# real server, checking the correctness verdicts (not the speed: timings
# are for benchmarks), so that the bench suite cannot rot.
#   tests/bench_smoke.sh BUILD_DIR
# Each scenario must exit 0 and its --json must carry the verdict counts
# at zero; `booking --tamper` (one acknowledged booking cancelled behind
# the bench's back) must exit 1 with lost_acks 1: the check can fail.
# Exit: 0 passed, 1 failed.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
BENCH=$BUILD/bin/holdfast-bench
TMP=$(mktemp -d "${TMPDIR:-/tmp}/hf-bench-smoke.XXXXXX")
PID=
pass=0
fail=0
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

"$BUILD/bin/holdfast" serve --listen 127.0.0.1:0 --data "$TMP/data" \
    --rate 10000000 --rate-burst 10000000 --kinds "$ROOT/examples/kinds" \
    2>"$TMP/server.log" &
PID=$!
PORT=
for _ in $(seq 400); do
    PORT=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' \
        "$TMP/server.log" | head -1)
    [ -n "$PORT" ] && break
    sleep 0.05
done
[ -n "$PORT" ] || { cat "$TMP/server.log" >&2; echo "FAIL: no server"; exit 1; }
URL=ws://127.0.0.1:$PORT

# has FILE KEY VALUE: the JSON (jansson, indent 2) has "KEY": VALUE.
has() {
    grep -Eq "^  \"$2\": $3,?\$" "$1"
}

# run NAME WANT_RC CHECKS... -- ARGS...: runs holdfast-bench ARGS with
# --json, expects exit WANT_RC and every CHECK ("key=value") in the JSON.
run() {
    local name=$1 want=$2 checks=() out=$TMP/$1.out json=$TMP/$1.json rc c
    shift 2
    while [ "$1" != "--" ]; do checks+=("$1"); shift; done
    shift
    "$BENCH" "$@" --json "$json" >"$out" 2>&1
    rc=$?
    if [ "$rc" -ne "$want" ]; then
        echo "FAIL: $name: exit $rc, want $want" >&2
        tail -25 "$out" >&2
        fail=$((fail + 1))
        return
    fi
    for c in "${checks[@]}"; do
        if ! has "$json" "${c%%=*}" "${c#*=}"; then
            echo "FAIL: $name: want ${c%%=*} = ${c#*=} in the JSON" >&2
            cat "$json" >&2
            tail -15 "$out" >&2
            fail=$((fail + 1))
            return
        fi
    done
    echo "ok: $name ($(grep -m1 '^verify:' "$out"))"
    pass=$((pass + 1))
}

run engine 0 verified=true -- \
    engine --actors 50 --ops 20000 --clients 2 --window 64
run calls 0 verified=true errors=0 -- \
    calls --url "$URL" --clients 4 --window 8 --actors 20 --ops 4000
run calls-msgpack 0 verified=true errors=0 -- \
    calls --url "$URL" --clients 2 --window 8 --actors 5 --ops 2000 --msgpack
# 6 users on 3 devices x 40 slots: most calls race for a held slot.
run booking 0 verified=true double_bookings=0 lost_acks=0 errors=0 -- \
    booking --url "$URL" --clients 6 --devices 3 --slots 40 --ops 3000
run booking-msgpack 0 verified=true double_bookings=0 lost_acks=0 -- \
    booking --url "$URL" --clients 4 --devices 2 --slots 30 --ops 1500 \
    --msgpack
run booking-tamper 1 verified=false double_bookings=0 lost_acks=1 -- \
    booking --url "$URL" --clients 4 --devices 2 --slots 30 --ops 1500 \
    --tamper
# The same race on the Lua kind timeslot: 1- and 2-unit ranges overlap.
run booking-timeslot 0 verified=true double_bookings=0 lost_acks=0 errors=0 -- \
    booking --url "$URL" --timeslot --clients 6 --devices 3 --slots 40 \
    --ops 2000
run booking-timeslot-tamper 1 verified=false double_bookings=0 -- \
    booking --url "$URL" --timeslot --clients 4 --devices 2 --slots 30 \
    --ops 1000 --msgpack --tamper
run fanout 0 verified=true lost=0 reordered=0 -- \
    fanout --url "$URL" --subscribers 20 --publishers 2 --actors 3 --ops 600
run fanout-msgpack 0 verified=true lost=0 reordered=0 -- \
    fanout --url "$URL" --subscribers 10 --publishers 1 --ops 300 --msgpack
run publish 0 verified=true lost=0 reordered=0 errors=0 -- \
    publish --url "$URL" --subscribers 20 --publishers 2 --batch 7 \
    --channels 5 --ops 700
run publish-msgpack 0 verified=true lost=0 reordered=0 errors=0 -- \
    publish --url "$URL" --subscribers 6 --publishers 3 --batch 20 \
    --channels 3 --ops 500 --msgpack
run devices 0 verified=true lost=0 reordered=0 errors=0 -- \
    devices --url "$URL" --devices 8 --dashboards 3 --rate 0 --ops 800
run devices-msgpack 0 verified=true lost=0 reordered=0 -- \
    devices --url "$URL" --devices 4 --dashboards 2 --rate 0 --ops 400 \
    --msgpack
run mix 0 verified=true errors=0 -- \
    mix --url "$URL" --clients 6 --actors 3 --slots 20 --ops 4000
run mix-msgpack 0 verified=true errors=0 -- \
    mix --url "$URL" --clients 4 --actors 2 --slots 20 --ops 2000 --msgpack
run connections 0 verified=true -- \
    connections --url "$URL" --clients 300 --hold 1

kill -TERM "$PID"
wait "$PID"
rc=$?
PID=
if [ "$rc" -ne 0 ]; then
    echo "FAIL: the server exited $rc" >&2
    tail -20 "$TMP/server.log" >&2
    fail=$((fail + 1))
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
