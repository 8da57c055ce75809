#!/usr/bin/env bash
# Accept rate and end-to-end throughput of several checkouts, measured in turns in one
# session, so that each figure can be read as a ratio to the others. For every round and
# every checkout: bench.py (mock delays 0, 3,000 orders at concurrency 100, the shortest
# slot) and accept_bench.py (wrk, 64 connections, 10 s); after each round, the SQL
# baseline of the first checkout (concurrency 50). One JSON line per run on stdout.
#
#   git worktree add --detach /tmp/c2031cf c2031cf   # with its own .venv if its deps differ
#   DATABASE_URL=postgresql://postgres@127.0.0.1:5432 REDIS_URL=redis://127.0.0.1:6379/0 \
#       loadtest/compare_commits.sh /tmp/c2031cf . > runs.jsonl
#
# DATABASE_URL names the server without a database: each run gets a database of its own,
# dropped first. A checkout is run with its own .venv when it has one, else with this one,
# and with its own bench.py, so that an old checkout is driven the way it was then.
set -euo pipefail
: "${DATABASE_URL:?the Postgres server, without a database name}"
: "${REDIS_URL:?the Redis server}"
ROUNDS=${ROUNDS:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
default_py=${PYTHON:-$here/.venv/bin/python}

fresh_db() {
    psql "$DATABASE_URL/postgres" -q -c "DROP DATABASE IF EXISTS $1" >/dev/null 2>&1
}

for round in $(seq "$ROUNDS"); do
    for dir in "$@"; do
        dir=$(cd "$dir" && pwd)
        py=$default_py
        [ -x "$dir/.venv/bin/python" ] && py=$dir/.venv/bin/python
        label=$(git -C "$dir" rev-parse --short HEAD)
        slot=()
        if (cd "$dir" && "$py" loadtest/bench.py --help) | grep -q -- --chain-slot-ms; then
            slot=(--chain-slot-ms 10)
        fi
        fresh_db oe_compare
        line=$(cd "$dir" && DATABASE_URL=$DATABASE_URL/oe_compare REDIS_PREFIX=oe-compare-$RANDOM: \
            "$py" loadtest/bench.py --spawn --quote-delay-ms 0 --execution-delay-ms 0 "${slot[@]}" \
            --worker-concurrency 100 --orders 3000 --concurrency 100 2>/dev/null | tail -1)
        echo "{\"what\": \"e2e\", \"commit\": \"$label\", \"round\": $round, \"r\": $line}"
        fresh_db oe_compare
        line=$(cd "$dir" && DATABASE_URL=$DATABASE_URL/oe_compare \
            "$default_py" "$here/loadtest/accept_bench.py" --python "$py" --connections 64 \
            --duration-s 10 2>/dev/null | tail -1)
        echo "{\"what\": \"accept\", \"commit\": \"$label\", \"round\": $round, \"r\": $line}"
    done
    first=$(cd "$1" && pwd)
    py=$default_py
    [ -x "$first/.venv/bin/python" ] && py=$first/.venv/bin/python
    fresh_db oe_compare_sql
    line=$(cd "$first" && "$py" loadtest/baseline_sql.py \
        --database-url "$DATABASE_URL/oe_compare_sql" --orders 3000 --concurrency 50 | tail -1)
    echo "{\"what\": \"baseline_sql\", \"commit\": \"$(git -C "$first" rev-parse --short HEAD)\", \"round\": $round, \"r\": $line}"
done
