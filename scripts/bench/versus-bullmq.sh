#!/usr/bin/env bash
# (issue 15) taquilla's noop drain and BullMQ's, side by side on the same Redis, alternating,
# with the ratio of each same-run pair per concurrency.
#
#   scripts/bench/versus-bullmq.sh [CONCURRENCY...]      default: 1 50 64
#
# Per concurrency and round: `drain.sh 1 noop C` (one release worker process, every state
# in Postgres with fsync'd completions), then `bench.mjs C` (one node process, state in Redis
# only), TASKS each. Env: TASKS (default 20000), ROUNDS (default 2), KIND (default noop;
# `assignment` compares the ledger writer with BullMQ's no-op, which is not like for like).
# Prints one PAIR line per run pair and a table at the end; logs in $LOG_DIR.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need node npm psql redis-cli python3
check_binaries

concurrencies=("$@")
[ ${#concurrencies[@]} -gt 0 ] || concurrencies=(1 50 64)
TASKS=${TASKS:-20000}
ROUNDS=${ROUNDS:-2}
KIND=${KIND:-noop}
export TASKS

if [ ! -d "$BENCH_DIR/bullmq/node_modules/bullmq" ]; then
  (cd "$BENCH_DIR/bullmq" && npm ci --no-audit --no-fund >&2)
fi

machine_info
out="$LOG_DIR/versus-bullmq-$(date +%Y%m%d-%H%M%S).txt"
: >"$out"
for ((round = 1; round <= ROUNDS; round++)); do
  for conc in "${concurrencies[@]}"; do
    say "round $round, concurrency $conc: taquilla"
    ours=$("$BENCH_DIR/drain.sh" 1 "$KIND" "$conc" 2>>"$LOG_DIR/versus-bullmq.stderr" | tee -a "$LOG_DIR/versus-bullmq.log" |
      sed -n 's/^DRAIN .*status=\([^ ]*\) .*wall_tasks_per_s=\([0-9]*\) .*/\1 \2/p')
    read -r status rate <<<"$ours"
    [ "$status" = ok ] || die "taquilla drain did not finish (status '$status'; see $LOG_DIR/versus-bullmq.log)"
    say "round $round, concurrency $conc: BullMQ"
    theirs=$(cd "$BENCH_DIR/bullmq" && JOBS=$TASKS timeout 900 node bench.mjs "$conc" | tee -a "$LOG_DIR/versus-bullmq.log" |
      sed -n 's/^BULLMQ .*completed=\([0-9]*\)\( TIMEOUT\)\{0,1\} .*drain_jobs_per_s=\([0-9]*\).*/\1 \3/p')
    read -r done_jobs bull_rate <<<"$theirs"
    [ "${done_jobs:-0}" = "$TASKS" ] || die "BullMQ drain did not finish ($theirs)"
    ratio=$(python3 -c "print(f'{$rate / $bull_rate:.2f}')")
    echo "PAIR round=$round concurrency=$conc kind=$KIND tasks=$TASKS taquilla_per_s=$rate bullmq_per_s=$bull_rate ratio=$ratio" | tee -a "$out"
  done
done
echo
echo "| concurrency | taquilla $KIND, 1 process (/s) | BullMQ, 1 process (/s) | ratio per pair |"
echo "| --- | --- | --- | --- |"
for conc in "${concurrencies[@]}"; do
  python3 - "$out" "$conc" <<'EOF'
import re, sys
rows = [dict(kv.split("=") for kv in l.split()[1:]) for l in open(sys.argv[1]) if l.startswith("PAIR")]
rows = [r for r in rows if r["concurrency"] == sys.argv[2]]
fmt = lambda k: " · ".join(f"{int(r[k]):,}" for r in rows)
print(f"| {sys.argv[2]} | {fmt('taquilla_per_s')} | {fmt('bullmq_per_s')} | {' · '.join(r['ratio'] + '×' for r in rows)} |")
EOF
done
