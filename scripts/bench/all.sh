#!/usr/bin/env bash
# Every benchmark of BENCHMARKS.md in one go (about 15 minutes on the 2-core machine), output
# also saved to var/bench/all-<UTC time>.log:
#   accept (16/32/64 connections), drain (noop and assignment, 1 and 2 processes,
#   concurrency 16/64/200), profiled drains (PROFILE=1: noop 16 and 200, assignment 64),
#   Postgres-only ceilings (pgbench), BullMQ reference (concurrency 1 and 50), pickup latency.
#
#   scripts/bench/all.sh
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log_dir=${BENCH_LOG_DIR:-$here/../../var/bench}
mkdir -p "$log_dir"
log="$log_dir/all-$(date -u +%Y%m%dT%H%M%SZ).log"
# A copy of the binaries, so a rebuild during the run cannot mix versions between runs.
src=${TAQUILLA_BIN_DIR:-$HOME/.cache/taquilla/target/release}
snap="$log_dir/bin"
mkdir -p "$snap"
cp -p "$src/api" "$src/worker" "$snap/"
export TAQUILLA_BIN_DIR=$snap
# One failing benchmark is reported and the others still run.
run() { "$@" || echo "FAILED ($?): $*"; }
{
  run "$here/accept.sh" 16 32 64
  run "$here/drain.sh" 1 noop 16 64 200
  run "$here/drain.sh" 2 noop 16 64 200
  run "$here/drain.sh" 1 assignment 16 64 200
  run "$here/drain.sh" 2 assignment 16 64 200
  run env PROFILE=1 "$here/drain.sh" 1 noop 16 200
  run env PROFILE=1 "$here/drain.sh" 1 assignment 64
  run "$here/sql-ceiling.sh" assignment 16
  run "$here/sql-ceiling.sh" accept 16
  run "$here/bullmq.sh" 1 50
  run env ROUNDS=1 "$here/versus-bullmq.sh" 1 50 64
  run "$here/pickup.sh"
} 2>&1 | tee "$log"
echo "saved: $log"
grep -E '^(ACCEPT|DRAIN|STATEMENTS|SQLCEILING|BULLMQ|PICKUP) ' "$log"
