#!/usr/bin/env bash
# crash.sh - the write-ahead log's long crash run: CYCLES (default 50)
# crashes of a real server under booking load on one data directory, at
# every fault point (after the log append, after its sync, mid-checkpoint,
# after a checkpoint before recycling), by SIGKILL at random moments, and
# during the replay at every third restart; every device is read back
# after each one (0 acknowledged bookings lost, 0 double). It is
# tests/test_crash.c's last test with more cycles, so it runs the others
# too. Usage: scripts/crash.sh [CYCLES] [BUILD_DIR]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CYCLES=${1:-50}
BUILD=${2:-$ROOT/build}
mkdir -p "$BUILD/test-tmp"
HF_TEST_TMP="$BUILD/test-tmp" HF_CRASH_CYCLES="$CYCLES" "$BUILD/bin/test_crash"
