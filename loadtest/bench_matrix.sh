#!/usr/bin/env bash
# The runs behind docs/benchmarks.md: bench.py --spawn for mock delays 0 and the default
# ones, worker concurrency 5, 50 and 500, three runs each; then baseline_sql.py at the
# same concurrencies. One JSON line per run goes to $OUT (default bench-results.jsonl).
# DATABASE_URL and REDIS_URL name the servers; each run gets its own REDIS_PREFIX.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-bench-results.jsonl}
RUNS=${RUNS:-3}

bench() {  # label quote_ms exec_ms worker_concurrency orders
  for run in $(seq 1 "$RUNS"); do
    line=$(REDIS_PREFIX="oe-bench-$(date +%s%N):" "$PY" loadtest/bench.py --spawn \
      --quote-delay-ms "$2" --execution-delay-ms "$3" --worker-concurrency "$4" \
      --orders "$5" --concurrency $(( $4 * 2 > 50 ? $4 * 2 : 50 )) | tail -n 1)
    echo "{\"label\": \"$1\", \"run\": $run, \"result\": $line}" | tee -a "$OUT"
  done
}

for wc in 5 50 500; do bench "delays 0" 0 0 "$wc" 1500; done
bench "delays default" 200 2500 5 30
bench "delays default" 200 2500 50 200
bench "delays default" 200 2500 500 1500
for c in 5 50 500; do
  for run in $(seq 1 "$RUNS"); do
    line=$("$PY" loadtest/baseline_sql.py --orders 3000 --concurrency "$c" | tail -n 1)
    echo "{\"label\": \"baseline_sql\", \"run\": $run, \"result\": $line}" | tee -a "$OUT"
  done
done
