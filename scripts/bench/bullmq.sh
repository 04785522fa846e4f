#!/usr/bin/env bash
# BullMQ reference for (b): 50,000 jobs added with addBulk, drained by a no-op Worker at
# concurrency 1 and 50 (or the given ones), on the same Redis, database 3, prefix `bullbench`.
#
#   scripts/bench/bullmq.sh [CONCURRENCY...]
# Installs the locked packages (npm ci) into scripts/bench/bullmq/node_modules when missing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need node npm redis-cli
cd "$BENCH_DIR/bullmq"
if [ ! -d node_modules/bullmq ] || [ ! -d node_modules/ioredis ]; then
  npm ci --no-audit --no-fund >&2
fi
machine_info
echo "node: $(node --version); bullmq: $(node -p "require('./node_modules/bullmq/package.json').version"); ioredis: $(node -p "require('./node_modules/ioredis/package.json').version")"
echo "redis persistence: appendonly=$(rcli CONFIG GET appendonly | tail -1) appendfsync=$(rcli CONFIG GET appendfsync | tail -1) save='$(rcli CONFIG GET save | tail -1)'"
python3 "$BENCH_DIR/cpu_by_process.py" snap "$LOG_DIR/bullmq.cpu.json"
t0=$(date +%s.%N)
timeout 900 node bench.mjs "$@"
# CPU of the node process (user, system), which has ended before the diff below can see it.
times >"$LOG_DIR/bullmq.times"
echo "node CPU, all runs (user system, from bash 'times'): $(tail -1 "$LOG_DIR/bullmq.times")"
python3 "$BENCH_DIR/cpu_by_process.py" diff "$LOG_DIR/bullmq.cpu.json" "$(python3 -c "import time; print(time.time() - $t0)")"
