#!/usr/bin/env bash
# The runs behind the charts of docs/benchmarks.md: bench.py --spawn with no mock delays
# and WORKER_CONCURRENCY=50, over a range of client concurrencies (closed loop) and of
# offered rates (open loop), RUNS times each. One JSON line per run goes to $OUT, with
# LABEL naming the series; loadtest/plot_bench.py draws them.
#
# Run it from any checkout to measure that checkout's server (bench.py spawns
# `python -m order_engine serve` from the working directory), e.g. a reference:
#   git worktree add /tmp/ref 4909862 && cd /tmp/ref && \
#     PY=$OLDPWD/.venv/bin/python LABEL=main OUT=$OLDPWD/bench-sweep.jsonl \
#     $OLDPWD/loadtest/bench_sweep.sh
# DATABASE_URL and REDIS_URL name the servers; each run gets its own REDIS_PREFIX.
# CONCURRENCIES and RATES (either may be empty) choose the loads; ORDERS the orders of a
# closed-loop run (an open-loop run sends four seconds' worth).
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT=${OUT:-bench-sweep.jsonl}
RUNS=${RUNS:-3}
LABEL=${LABEL:-$(git rev-parse --short HEAD)}
CONCURRENCIES=${CONCURRENCIES-10 25 50 100 200}
RATES=${RATES-50 100 200 300 400}

run() {  # bench.py arguments...
  for run in $(seq 1 "$RUNS"); do
    line=$(REDIS_PREFIX="oe-sweep-$(date +%s%N):" "$PY" loadtest/bench.py --spawn \
      --quote-delay-ms 0 --execution-delay-ms 0 --worker-concurrency 50 "$@" | tail -n 1)
    echo "{\"label\": \"$LABEL\", \"run\": $run, \"result\": $line}" | tee -a "$OUT"
  done
}

for c in $CONCURRENCIES; do run --orders "${ORDERS:-600}" --concurrency "$c"; done
for r in $RATES; do run --orders $(( r * 4 )) --rate "$r"; done
