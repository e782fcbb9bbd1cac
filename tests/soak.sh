#!/usr/bin/env bash
# soak.sh - holdfast under mixed load for a long time, watching whether the
# server's memory and descriptors stay flat. Not part of `make test`.
#
#   tests/soak.sh [--minutes N] [--out DIR] [flags]      (--help: all flags)
#
# Starts a fresh server (its own temporary data directory, a free loopback
# port, --outbuf-max small so that slow consumers are cut within a minute)
# and runs against it, for --minutes (default 30):
#   - holdfast-bench mix in rounds of --mix-round seconds (fresh actors
#     each round, so the old ones go idle and are evicted); each round
#     checks its actors' state afterwards and exits 1 when it is wrong;
#   - holdfast-bench calls at a small scale, over and over: connections
#     made, used, checked and closed every few seconds;
#   - tests/soak_slowreader.py: a publisher keeping one actor busy, and
#     its subscribers: stalled ones that read nothing and must be cut by
#     the server (1013), slow ones that read a quarter of it and must be
#     cut too, a laggard that stays behind but keeps reading and must see
#     every event once, in order; and short-lived connections ending in a
#     close handshake, a reset, a FIN or half a handshake.
# Every second it reads the server's /metrics (for the peak mailbox depth),
# and every --interval seconds it writes one CSV row and one progress line:
# RSS (VmRSS, and its anonymous and file-backed parts) and open fds from
# /proc/PID, connections, mailbox depth, actors, slow-consumer cuts. At the
# end it lets the server go quiet, checks the fds are back to the idle
# baseline, stops it (SIGTERM must exit 0), draws the CSV with gnuplot
# (installing gnuplot-nox when missing) and prints a summary.
#
# The verdict "flat": the anonymous RSS (the server's heap and stacks)
# grew by less than --rss-growth-pct from the end of the warm-up
# (--warmup-pct of the run) to the end, and the fds returned to the idle
# baseline. The file-backed part of the RSS is LMDB's map of the data
# file: it grows with the data by design and is page cache the kernel can
# take back, so it is shown, not judged.
#
# Results in --out (default build/soak-DATE): soak.csv, soak.png,
# summary.txt, server.log, bench.log (one line per bench run with its
# verdict), bench/ (each mix round's output and JSON, failed calls runs),
# slowreader.log. The data directory and the server are removed on every
# exit, Ctrl-C included.
# Exit: 0 passed (flat, every check passed, server alive and clean exit),
# 1 failed, 2 bad usage or cannot run, 130 interrupted.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$ROOT/build
MINUTES=30
OUT=
INTERVAL=10
WARMUP_PCT=20
RSS_GROWTH_PCT=10
OUTBUF_MAX=262144
DURABILITY=sync
MIX_ROUND=60
MIX_CLIENTS=20
MIX_RATE=2000
CALLS_PAUSE=2
PUBLISH_RATE=1000
CHURN_RATE=20
QUIET_WAIT=90

usage() {
    sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'
    cat <<EOF
flags:
  --minutes N         length of the load (default $MINUTES)
  --out DIR           results (default build/soak-YYYYmmdd-HHMMSS)
  --build DIR         where bin/holdfast and bin/holdfast-bench are (default build)
  --interval S        seconds between samples (default $INTERVAL)
  --warmup-pct P      the warm-up, in percent of the run (default $WARMUP_PCT)
  --rss-growth-pct P  anonymous RSS growth after the warm-up still "flat" (default $RSS_GROWTH_PCT)
  --outbuf-max BYTES  the server's slow-consumer limit (default $OUTBUF_MAX)
  --durability MODE   sync or none (default $DURABILITY)
  --mix-round S       seconds per mix run (default $MIX_ROUND)
  --mix-clients C     mix users (default $MIX_CLIENTS)
  --mix-rate R        mix calls/s, 0 = as fast as it goes (default $MIX_RATE)
  --publish-rate R    events/s on the slow readers' actor (default $PUBLISH_RATE)
  --churn-rate R      short-lived connections/s (default $CHURN_RATE)
EOF
}

while [ $# -gt 0 ]; do
    case $1 in
    --minutes) MINUTES=$2; shift ;;
    --out) OUT=$2; shift ;;
    --build) BUILD=$2; shift ;;
    --interval) INTERVAL=$2; shift ;;
    --warmup-pct) WARMUP_PCT=$2; shift ;;
    --rss-growth-pct) RSS_GROWTH_PCT=$2; shift ;;
    --outbuf-max) OUTBUF_MAX=$2; shift ;;
    --durability) DURABILITY=$2; shift ;;
    --mix-round) MIX_ROUND=$2; shift ;;
    --mix-clients) MIX_CLIENTS=$2; shift ;;
    --mix-rate) MIX_RATE=$2; shift ;;
    --publish-rate) PUBLISH_RATE=$2; shift ;;
    --churn-rate) CHURN_RATE=$2; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "soak: unknown flag $1 (--help)" >&2; exit 2 ;;
    esac
    [ $# -gt 0 ] || { echo "soak: a flag lacks its value" >&2; exit 2; }
    shift
done
for v in MINUTES INTERVAL WARMUP_PCT RSS_GROWTH_PCT OUTBUF_MAX MIX_ROUND \
    MIX_CLIENTS MIX_RATE PUBLISH_RATE CHURN_RATE; do
    case ${!v} in
    '' | *[!0-9]*) echo "soak: --$(echo "$v" | tr 'A-Z_' 'a-z-') wants a whole number" >&2
        exit 2 ;;
    esac
done
if [ "$MINUTES" -lt 1 ] || [ "$INTERVAL" -lt 1 ] || [ "$MIX_ROUND" -lt 15 ]; then
    echo "soak: --minutes >= 1, --interval >= 1, --mix-round >= 15" >&2
    exit 2
fi

HOLDFAST=$BUILD/bin/holdfast
BENCH=$BUILD/bin/holdfast-bench
SLOWREADER=$ROOT/tests/soak_slowreader.py
for f in "$HOLDFAST" "$BENCH"; do
    [ -x "$f" ] || { echo "soak: $f is missing: make build" >&2; exit 2; }
done
command -v python3 >/dev/null || { echo "soak: python3 is missing" >&2; exit 2; }
command -v curl >/dev/null || { echo "soak: curl is missing" >&2; exit 2; }

OUT=${OUT:-$BUILD/soak-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT/bench" || exit 2
OUT=$(cd "$OUT" && pwd)
CSV=$OUT/soak.csv
TMP=$(mktemp -d "${TMPDIR:-/tmp}/hf-soak.XXXXXX")
PID='' MIXPID='' CALLSPID='' SRPID='' INTERRUPTED=0

# Every exit: the loads, then the server, then the data. Each by its pid.
# shellcheck disable=SC2317 # (the traps call these)
cleanup() {
    local p
    for p in $MIXPID $CALLSPID $SRPID; do kill -TERM "$p" 2>/dev/null; done
    for p in $MIXPID $CALLSPID $SRPID; do wait "$p" 2>/dev/null; done
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill -TERM "$PID"
        for _ in $(seq 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$PID" 2>/dev/null
        wait "$PID" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
# The first Ctrl-C ends the run early, with its summary; a second one
# leaves at once (cleanup still runs).
# shellcheck disable=SC2317
on_int() {
    [ "$INTERRUPTED" -eq 1 ] && exit 130
    INTERRUPTED=1
    echo "soak: interrupted: stopping (Ctrl-C again to leave at once)" >&2
}
trap on_int INT TERM

now_ns() { date +%s%N; }
sleep_until_ns() {
    local d=$(($1 - $(now_ns)))
    [ "$d" -gt 0 ] && sleep "$((d / 1000000000)).$(printf %09d $((d % 1000000000)))"
}
log() { echo "$*" | tee -a "$OUT/summary.txt"; }
mib1() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# ---- gnuplot, for the picture at the end -----------------------------------
if ! command -v gnuplot >/dev/null; then
    echo "soak: installing gnuplot-nox for the plot" >&2
    sudo=
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y -qq --no-install-recommends gnuplot-nox \
        >"$TMP/apt.log" 2>&1 ||
        { $sudo apt-get update -qq >>"$TMP/apt.log" 2>&1 &&
            $sudo apt-get install -y -qq --no-install-recommends gnuplot-nox \
                >>"$TMP/apt.log" 2>&1; } ||
        echo "soak: could not install gnuplot-nox (no plot): $(tail -1 "$TMP/apt.log")" >&2
fi

# ---- the server --------------------------------------------------------------
# The server, the benches and the slow readers run in sessions of their
# own (setsid: same pid, no fork), so that a Ctrl-C reaches this script
# alone and it stops them in order, rather than the server dying under
# the clients and every bench run counting as failed.
: >"$OUT/summary.txt"
setsid "$HOLDFAST" serve --listen 127.0.0.1:0 --data "$TMP/data" \
    --durability "$DURABILITY" --outbuf-max "$OUTBUF_MAX" \
    --rate 100000000 --rate-burst 100000000 2>"$OUT/server.log" &
PID=$!
PORT=
for _ in $(seq 400); do
    PORT=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' \
        "$OUT/server.log" | head -1)
    [ -n "$PORT" ] && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.05
done
[ -n "$PORT" ] || { cat "$OUT/server.log" >&2; echo "soak: the server did not start" >&2; exit 1; }
URL=ws://127.0.0.1:$PORT
METRICS=http://127.0.0.1:$PORT/metrics

# ---- sampling ----------------------------------------------------------------
# fd_count: the server's open descriptors.
# shellcheck disable=SC2012 # (the names are numbers)
fd_count() { ls "/proc/$PID/fd" 2>/dev/null | wc -l; }
# proc_sample: "rss_kb anon_kb file_kb fds cpu_s" of the server, from /proc.
proc_sample() {
    local fds cpu
    [ -r "/proc/$PID/status" ] || return 1
    fds=$(fd_count)
    cpu=$(awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$PID/stat" 2>/dev/null)
    awk -v fds="$fds" -v cpu="${cpu:-0}" '
        $1 == "VmRSS:" { r = $2 } $1 == "RssAnon:" { a = $2 }
        $1 == "RssFile:" { f = $2 }
        END { print r + 0, a + 0, f + 0, fds, cpu }' "/proc/$PID/status" 2>/dev/null
}
# scrape: the /metrics fields we keep, in CSV order, or fails.
MFIELDS="holdfast_connections holdfast_connections_total holdfast_mailbox_depth
holdfast_actors_active holdfast_evictions_total holdfast_slow_consumers_total
holdfast_idle_hangups_total holdfast_overloaded_total
holdfast_connections_refused_total calls_ok holdfast_commits_total
holdfast_commit_failures_total"
scrape() {
    curl -s --max-time 5 "$METRICS" >"$TMP/metrics" 2>/dev/null || return 1
    awk -v fields="$MFIELDS" '
        $1 == "holdfast_calls_total{outcome=\"ok\"}" { v["calls_ok"] = $2 }
        $1 !~ /^#/ { v[$1] = $2 }
        END { n = split(fields, f); s = "";
              for (i = 1; i <= n; i++) s = s (i > 1 ? " " : "") (f[i] in v ? v[f[i]] : -1);
              print s }' "$TMP/metrics"
}
# status KEY: a counter from the slow readers' status file.
status() {
    if [ -r "$TMP/slowreader.status" ]; then
        awk -F= -v k="$1" '$1 == k { v = $2 } END { print v + 0 }' "$TMP/slowreader.status"
    else
        echo 0
    fi
}
verdicts() { grep -c " $1 [0-9]* rc=$2 " "$OUT/bench.log" 2>/dev/null; }
verdicts_bad() { grep " $1 [0-9]* rc=" "$OUT/bench.log" 2>/dev/null | grep -vc " rc=0 "; }

echo "t_s,phase,rss_kb,anon_kb,file_kb,fds,cpu_s,conns,conns_total,mailbox,mailbox_max,actors,evictions,slow_consumers,idle_hangups,overloaded,refused,calls_ok,commits,commit_failures,data_kb,pub_acked,laggard_lag,reader_cuts,mix_ok,mix_failed,calls_runs_ok,calls_runs_failed" >"$CSV"
MBOX_MAX=0 MBOX_PEAK=0 CONNS_PEAK=0
UNREAD=$(echo "$MFIELDS" | awk '{ for (i = 1; i <= NF; i++) printf "%s-1", (n++ ? " " : "") }') # /metrics did not answer
# row: one CSV row (at $T, phase $PHASE) of what /proc and /metrics say
# now; sets R_* to its figures.
row() {
    local p m data cuts
    p=$(proc_sample) || return 1
    m=$(scrape) || m=$UNREAD
    data=$(du -sk "$TMP/data" 2>/dev/null | cut -f1)
    cuts=$(($(status stall_cuts) + $(status slow_cuts) + $(status laggard_cuts)))
    read -r R_RSS R_ANON R_FILE R_FDS R_CPU <<<"$p"
    read -r R_CONNS _ R_MBOX R_ACTORS _ R_SLOW _ <<<"$m"
    [ "$R_MBOX" -gt "$MBOX_MAX" ] && MBOX_MAX=$R_MBOX
    R_PEAK=$MBOX_MAX R_CUTS=$cuts
    echo "$T,$PHASE,$R_RSS,$R_ANON,$R_FILE,$R_FDS,$R_CPU,$(echo "$m" | awk -v p="$R_PEAK" '{ $4 = p " " $4; gsub(/ /, ","); print }'),${data:-0},$(status pub_acked),$(status laggard_lag),$cuts,$(verdicts mix 0),$(verdicts_bad mix),$(verdicts calls 0),$(verdicts_bad calls)" >>"$CSV"
}

# Idle baseline: the server up, nobody connected.
sleep 2
T=0 PHASE=idle
row || { echo "soak: cannot read /proc/$PID" >&2; exit 1; }
IDLE_RSS=$R_RSS IDLE_ANON=$R_ANON IDLE_FDS=$R_FDS
log "soak: $MINUTES min of mixed load on holdfast $("$HOLDFAST" version | awk '{ print $2 }') (pid $PID, $URL, durability $DURABILITY, --outbuf-max $OUTBUF_MAX); results in $OUT"
log "soak: idle: RSS $((IDLE_RSS / 1024)) MiB (anon $((IDLE_ANON / 1024)) MiB), $IDLE_FDS fds"

# ---- the loads ---------------------------------------------------------------
START=$(date +%s)
END=$((START + MINUTES * 60))
: >"$OUT/bench.log"

# verdict NAME N RC OUTFILE: one line per bench run in bench.log.
verdict() {
    echo "$(date +%T) $1 $2 rc=$3 $(grep -m1 '^verify:' "$4" 2>/dev/null || echo "(no verdict line)")" >>"$OUT/bench.log"
}
mix_loop() {
    local n=0 child='' rc left d
    trap '[ -n "$child" ] && kill -TERM "$child" 2>/dev/null; exit 0' TERM
    while :; do
        left=$((END - $(date +%s)))
        [ "$left" -ge 20 ] || break
        d=$MIX_ROUND
        [ "$d" -gt $((left - 10)) ] && d=$((left - 10))
        n=$((n + 1))
        setsid "$BENCH" mix --url "$URL" --clients "$MIX_CLIENTS" --rate "$MIX_RATE" \
            --duration "$d" --durability "$DURABILITY" \
            --json "$OUT/bench/mix-$n.json" >"$OUT/bench/mix-$n.out" 2>&1 &
        child=$!
        wait "$child"
        rc=$?
        child=
        verdict mix "$n" "$rc" "$OUT/bench/mix-$n.out"
    done
}
calls_loop() {
    local n=0 child='' rc
    trap '[ -n "$child" ] && kill -TERM "$child" 2>/dev/null; exit 0' TERM
    while [ "$(date +%s)" -lt $((END - 5)) ]; do
        n=$((n + 1))
        setsid "$BENCH" calls --url "$URL" --clients 25 --window 4 --actors 10 \
            --ops 1000 --durability "$DURABILITY" >"$TMP/calls.out" 2>&1 &
        child=$!
        wait "$child"
        rc=$?
        child=
        verdict calls "$n" "$rc" "$TMP/calls.out"
        [ "$rc" -eq 0 ] || cp "$TMP/calls.out" "$OUT/bench/calls-$n.out"
        sleep "$CALLS_PAUSE"
    done
}
mix_loop &
MIXPID=$!
calls_loop &
CALLSPID=$!
setsid python3 "$SLOWREADER" --port "$PORT" --status "$TMP/slowreader.status" \
    --rate "$PUBLISH_RATE" --churn-rate "$CHURN_RATE" \
    --outbuf-max "$OUTBUF_MAX" >"$OUT/slowreader.log" 2>&1 &
SRPID=$!

# ---- the run: a /metrics look every second, a row every INTERVAL -----------
WARM_T=$((MINUTES * 60 * WARMUP_PCT / 100))
WARM_RSS='' WARM_ANON='' WARM_FDS='' WARM_FILE=''
DEAD='' HUNG='' MISSES=0
t0=$(now_ns)
tick=0
progress() {
    printf '%7s %7s %7s %7s %5s %6s %7s %6s %6s %6s %6s %7s  %s\n' "$@" |
        tee -a "$OUT/progress.txt"
}
: >"$OUT/progress.txt"
progress time rss_MiB anon file fds conns mailbox peak actors 1013s cuts lag \
    "mix ok/failed, calls ok/failed"
while [ "$INTERRUPTED" -eq 0 ]; do
    tick=$((tick + 1))
    sleep_until_ns $((t0 + tick * 1000000000))
    [ "$INTERRUPTED" -eq 0 ] || break
    if ! kill -0 "$PID" 2>/dev/null; then
        DEAD=$(($(date +%s) - START))
        break
    fi
    if m=$(scrape); then
        MISSES=0
        read -r c _ mb _ <<<"$m"
        [ "$mb" -gt "$MBOX_MAX" ] && MBOX_MAX=$mb
        [ "$c" -gt "$CONNS_PEAK" ] && CONNS_PEAK=$c
    else
        MISSES=$((MISSES + 1))
        if [ "$MISSES" -ge 30 ]; then
            HUNG=$(($(date +%s) - START))
            break
        fi
    fi
    [ $((tick % INTERVAL)) -eq 0 ] || continue
    T=$tick PHASE=load
    row || continue
    [ "$R_PEAK" -gt "$MBOX_PEAK" ] && MBOX_PEAK=$R_PEAK
    MBOX_MAX=0
    if [ -z "$WARM_RSS" ] && [ "$T" -ge "$WARM_T" ]; then
        WARM_RSS=$R_RSS WARM_ANON=$R_ANON WARM_FILE=$R_FILE WARM_FDS=$R_FDS WARM_T=$T
    fi
    progress "${T}s" "$(mib1 "$R_RSS")" "$(mib1 "$R_ANON")" "$(mib1 "$R_FILE")" \
        "$R_FDS" "$R_CONNS" "$R_MBOX" "$R_PEAK" "$R_ACTORS" "$R_SLOW" \
        "$R_CUTS" "$(status laggard_lag)" \
        "mix $(verdicts mix 0)/$(verdicts_bad mix), calls $(verdicts calls 0)/$(verdicts_bad calls)"
    [ "$(date +%s)" -lt "$END" ] || break
done
LAST_RSS=${R_RSS:-0} LAST_ANON=${R_ANON:-0} LAST_FILE=${R_FILE:-0} LAST_FDS=${R_FDS:-0} LAST_T=$T
[ "$MBOX_MAX" -gt "$MBOX_PEAK" ] && MBOX_PEAK=$MBOX_MAX

# ---- the end: loads stop, the server goes quiet ------------------------------
if [ -n "$DEAD$HUNG" ]; then
    # Evidence first: the log, and where a hung server's threads are.
    if [ -n "$HUNG" ] && command -v gdb >/dev/null; then
        gdb -p "$PID" -batch -ex 'thread apply all bt' >"$OUT/hung-backtrace.txt" 2>&1
    fi
    if [ -n "$DEAD" ]; then
        wait "$PID" 2>/dev/null
        SERVER_RC=$?
        PID=
    fi
    for p in $MIXPID $CALLSPID; do kill -TERM "$p" 2>/dev/null; done
fi
if [ "$INTERRUPTED" -eq 1 ]; then
    for p in $MIXPID $CALLSPID; do kill -TERM "$p" 2>/dev/null; done
fi
echo "soak: load over; waiting for the bench runs in progress" >&2
for p in $MIXPID $CALLSPID; do
    for _ in $(seq 120); do kill -0 "$p" 2>/dev/null || break; sleep 1; done
    kill -TERM "$p" 2>/dev/null
    wait "$p" 2>/dev/null
done
MIXPID='' CALLSPID=''
kill -TERM "$SRPID" 2>/dev/null
wait "$SRPID"
SR_RC=$?
SRPID=

QUIET_S=-1
if [ -z "$DEAD$HUNG" ] && [ "$INTERRUPTED" -eq 0 ]; then
    # Idle again: every connection gone and the fds back where they were,
    # or QUIET_WAIT seconds (a heartbeat hang-up takes 2 x 25 + 5 s).
    for s in $(seq 0 "$QUIET_WAIT"); do
        m=$(scrape) || m=-1
        fds=$(fd_count)
        if [ "${m%% *}" -eq 0 ] && [ "$fds" -le "$IDLE_FDS" ]; then QUIET_S=$s; break; fi
        sleep 1
    done
    T=$(($(date +%s) - START)) PHASE=quiet
    row
    QUIET_RSS=$R_RSS QUIET_ANON=$R_ANON QUIET_FDS=$R_FDS QUIET_CONNS=$R_CONNS
fi

ALIVE=no
SERVER_RC=${SERVER_RC:-}
if [ -z "$DEAD" ] && kill -0 "$PID" 2>/dev/null && scrape >/dev/null; then
    ALIVE=yes
    cp "$TMP/metrics" "$OUT/metrics-end.txt"
    kill -TERM "$PID"
    wait "$PID"
    SERVER_RC=$?
    PID=
fi
[ -n "$SERVER_RC" ] || SERVER_RC=unknown

# ---- the picture -------------------------------------------------------------
col() { awk -F, -v n="$1" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == n) print i }' "$CSV"; }
last() { awk -F, -v c="$(col "$1")" 'END { print $c }' "$CSV"; }
if command -v gnuplot >/dev/null && [ "$(wc -l <"$CSV")" -gt 2 ]; then
    cat >"$TMP/soak.gp" <<EOF
set terminal pngcairo size 1200,1300 font ",10" noenhanced
set output "$OUT/soak.png"
set datafile separator ","
set key top left opaque box
set grid
set xlabel "minutes"
set autoscale xfix
set offsets 0, 0.02 * $MINUTES, 0, 0
set multiplot layout 4,1 title "holdfast soak: $MINUTES min, $(date '+%Y-%m-%d %H:%M'), durability $DURABILITY"
set arrow 1 from $WARM_T/60.0, graph 0 to $WARM_T/60.0, graph 1 nohead dt 2 lc rgb "gray40"
set label 1 "warm-up end" at $WARM_T/60.0, graph 0.05 offset 0.5,0 tc rgb "gray40"
set ylabel "MiB"
set y2label "actors"
set y2tics
set yrange [0:*]
set y2range [0:*]
set title "anonymous RSS: the server's heap and stacks (the verdict's measure)"
plot "$CSV" using (\$$(col t_s)/60):(\$$(col anon_kb)/1024) skip 1 with linespoints pt 7 ps 0.4 lw 2 title "anon RSS", \
     "" using (\$$(col t_s)/60):$(col actors) skip 1 axes x1y2 with lines dt 3 title "actors in memory (right)"$(
    [ -n "$WARM_ANON" ] && printf ', \\\n     %s with lines dt 2 lc rgb "red" title "flat limit: warm-up + %s%%"' \
        "$(awk -v a="$WARM_ANON" -v p="$RSS_GROWTH_PCT" 'BEGIN { print a * (1 + p / 100) / 1024 }')" "$RSS_GROWTH_PCT")
set y2label "data dir MiB"
set title "VmRSS = anon + file; the file part is LMDB's map, and follows the data directory"
plot "$CSV" using (\$$(col t_s)/60):(\$$(col rss_kb)/1024) skip 1 with lines lw 2 title "VmRSS", \
     "" using (\$$(col t_s)/60):(\$$(col file_kb)/1024) skip 1 with lines title "file (LMDB map)", \
     "" using (\$$(col t_s)/60):(\$$(col data_kb)/1024) skip 1 axes x1y2 with lines dt 3 title "data dir (right)"
set ylabel "count"
set y2label "connections"
set title "open fds and WebSocket connections (idle baseline $IDLE_FDS fds)"
plot "$CSV" using (\$$(col t_s)/60):$(col fds) skip 1 with linespoints pt 7 ps 0.4 lw 2 title "fds", \
     "" using (\$$(col t_s)/60):$(col conns) skip 1 axes x1y2 with lines title "connections (right)", \
     $IDLE_FDS with lines dt 2 lc rgb "gray40" title "idle fds"
set ylabel "messages"
set y2label "cumulative"
set title "mailbox depth (sampled each second: peak per interval) and slow consumers cut"
plot "$CSV" using (\$$(col t_s)/60):$(col mailbox_max) skip 1 with lines lw 2 title "mailbox depth, peak", \
     "" using (\$$(col t_s)/60):$(col mailbox) skip 1 with lines title "mailbox depth, at sample", \
     "" using (\$$(col t_s)/60):$(col slow_consumers) skip 1 axes x1y2 with steps title "slow consumers cut, 1013 (right)", \
     "" using (\$$(col t_s)/60):$(col idle_hangups) skip 1 axes x1y2 with steps title "heartbeat hang-ups (right)"
unset multiplot
EOF
    gnuplot "$TMP/soak.gp" >"$TMP/gnuplot.log" 2>&1 ||
        echo "soak: gnuplot failed: $(head -3 "$TMP/gnuplot.log")" >&2
fi

# ---- the summary -------------------------------------------------------------
pct() { echo "$1 $2" | awk '{ if ($1 > 0) printf "%+.1f%%", ($2 - $1) * 100 / $1; else print "n/a" }'; }
mib() { echo "${1:-0}" | awk '{ printf "%.1f MiB", $1 / 1024 }'; }
# slope of column NAME (KiB) over minutes, from the warm-up on.
slope() {
    awk -F, -v c="$(col "$1")" -v w="$WARM_T" -v tc="$(col t_s)" -v pc="$(col phase)" '
        NR > 1 && $pc == "load" && $tc >= w { x = $tc / 60; y = $c; n++; sx += x; sy += y; sxx += x * x; sxy += x * y }
        END { d = n * sxx - sx * sx; if (n > 2 && d > 0) printf "%+.0f KiB/min", (n * sxy - sx * sy) / d; else print "n/a" }' "$CSV"
}
FAILS=()
MIX_OK=$(verdicts mix 0) MIX_BAD=$(verdicts_bad mix)
CALLS_OK=$(verdicts calls 0) CALLS_BAD=$(verdicts_bad calls)
[ "$MIX_BAD" -eq 0 ] || FAILS+=("$MIX_BAD mix runs failed")
[ "$CALLS_BAD" -eq 0 ] || FAILS+=("$CALLS_BAD calls runs failed")
[ "$MIX_OK" -gt 0 ] || FAILS+=("no mix run completed")
[ "$SR_RC" -eq 0 ] || FAILS+=("slow readers: $(tail -1 "$OUT/slowreader.log")")
[ -z "$DEAD" ] || FAILS+=("the server died at ${DEAD} s")
[ -z "$HUNG" ] || FAILS+=("the server stopped answering /metrics at ${HUNG} s")
[ "$ALIVE" = yes ] || FAILS+=("the server was not alive at the end")
[ "$SERVER_RC" = 0 ] || FAILS+=("the server exited $SERVER_RC on SIGTERM")

log ""
log "summary ($((LAST_T / 60)) min $((LAST_T % 60)) s of load; warm-up until $WARM_T s):"
if [ -n "$WARM_RSS" ]; then
    log "  VmRSS      idle $(mib "$IDLE_RSS"), warm-up end $(mib "$WARM_RSS"), end $(mib "$LAST_RSS") ($(pct "$WARM_RSS" "$LAST_RSS")), after load $(mib "${QUIET_RSS:-}")"
    log "  anon RSS   idle $(mib "$IDLE_ANON"), warm-up end $(mib "$WARM_ANON"), end $(mib "$LAST_ANON") ($(pct "$WARM_ANON" "$LAST_ANON")), after load $(mib "${QUIET_ANON:-}"); slope after warm-up $(slope anon_kb)"
    log "  file RSS   warm-up end $(mib "$WARM_FILE"), end $(mib "$LAST_FILE") (LMDB's map; data dir $(mib "$(last data_kb)"))"
    log "  fds        idle $IDLE_FDS, warm-up end $WARM_FDS, end $LAST_FDS, after load ${QUIET_FDS:-?} ($([ "$QUIET_S" -ge 0 ] && echo "back to the baseline in $QUIET_S s" || echo "NOT back to the baseline $IDLE_FDS after $QUIET_WAIT s"))"
fi
log "  conns      peak $CONNS_PEAK, after load ${QUIET_CONNS:-?}"
log "  mailbox    peak depth $MBOX_PEAK (a look each second)"
log "  server     slow consumers cut $(last slow_consumers), heartbeat hang-ups $(last idle_hangups), overloaded $(last overloaded), refused $(last refused), commit failures $(last commit_failures)"
log "  benches    mix $MIX_OK verified, $MIX_BAD failed; calls $CALLS_OK verified, $CALLS_BAD failed (bench.log)"
log "  readers    $(grep -m1 '^slowreader: [0-9]* s;' "$OUT/slowreader.log" | sed 's/^slowreader: //')"
log "             $(tail -1 "$OUT/slowreader.log" | sed 's/^slowreader: //')"
log "  server     $([ "$ALIVE" = yes ] && echo alive at the end || echo NOT alive at the end), exit $SERVER_RC on SIGTERM"

GROWTH=$(pct "${WARM_ANON:-0}" "${LAST_ANON:-0}")
if [ -z "$WARM_ANON" ]; then
    log "verdict: none (the run ended before the warm-up did)"
    FAILS+=("no verdict")
elif [ "$QUIET_S" -ge 0 ] &&
    awk -v a="$WARM_ANON" -v b="$LAST_ANON" -v p="$RSS_GROWTH_PCT" \
        'BEGIN { exit !(b <= a * (1 + p / 100)) }'; then
    log "verdict: flat (anon RSS $GROWTH after the warm-up, under $RSS_GROWTH_PCT%; fds back to the baseline $IDLE_FDS)"
else
    log "verdict: NOT flat (anon RSS $GROWTH after the warm-up, limit $RSS_GROWTH_PCT%; fds after load ${QUIET_FDS:-?}, baseline $IDLE_FDS)"
    FAILS+=("not flat")
fi
[ -s "$OUT/soak.png" ] && log "plot: $OUT/soak.png"
if [ "$INTERRUPTED" -eq 1 ]; then
    log "result: INTERRUPTED after $LAST_T s"
    exit 130
fi
if [ ${#FAILS[@]} -eq 0 ]; then
    log "result: PASS"
    exit 0
fi
reasons=$(printf '%s; ' "${FAILS[@]}")
log "result: FAIL (${reasons%; })"
exit 1
