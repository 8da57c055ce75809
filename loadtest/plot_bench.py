"""bench.py's JSON lines to PNG charts: throughput and latency percentiles against the
client concurrency (closed loop) or the offered rate (open loop).

Reads lines as bench.py prints them, or wrapped as bench_sweep.sh and bench_matrix.sh
write them (`{"label": …, "run": …, "result": {…}}`); each label is one series, and the
runs of one label at one load are drawn as their median with the lowest and highest as
the error bar. Writes `<out-dir>/bench-concurrency.png` and/or `bench-rate.png`.

    python loadtest/plot_bench.py bench-sweep.jsonl --out-dir docs/images
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

# (mode, label) -> load -> runs
Runs = dict[tuple[str, str], dict[float, list[dict[str, Any]]]]
PERCENTILES = ("p50", "p90", "p99")


def read_runs(lines: Iterable[str]) -> Runs:
    runs: Runs = defaultdict(lambda: defaultdict(list))
    for line in lines:
        if not line.strip().startswith("{"):
            continue
        record = json.loads(line)
        result = record.get("result", record)
        if "mode" not in result:
            continue  # baseline_sql.py's lines have no load mode
        label = record.get("label", "bench")
        mode = result["mode"]
        load = result["concurrency"] if mode == "concurrency" else result["offered_orders_per_s"]
        runs[mode, label][float(load)].append(result)
    return runs


def _spread(values: list[float]) -> tuple[float, float, float]:
    """Median, and its distance to the lowest and the highest."""
    mid = statistics.median(values)
    return mid, mid - min(values), max(values) - mid


def _series(
    by_load: dict[float, list[dict[str, Any]]], pick: Any
) -> tuple[list[float], list[float], list[list[float]]]:
    loads: list[float] = []
    mids: list[float] = []
    errors: list[list[float]] = [[], []]
    for load in sorted(by_load):
        values = [v for v in (pick(r) for r in by_load[load]) if v is not None]
        if not values:
            continue
        mid, low, high = _spread(values)
        loads.append(load)
        mids.append(mid)
        errors[0].append(low)
        errors[1].append(high)
    return loads, mids, errors


def plot_mode(runs: Runs, mode: str, title: str, out: Path) -> bool:
    labels = sorted(label for m, label in runs if m == mode)
    if not labels:
        return False
    figure, (throughput, latency) = plt.subplots(1, 2, figsize=(12, 4.5))
    xlabel = "client concurrency (orders in flight)" if mode == "concurrency" else "offered rate"
    xlabel += "" if mode == "concurrency" else " (orders/s)"
    styles = ("-", "--", ":", "-.")
    for index, label in enumerate(labels):
        by_load = runs[mode, label]
        style = styles[index % len(styles)]
        loads, mids, errors = _series(by_load, lambda r: r["achieved_orders_per_s"])
        throughput.errorbar(loads, mids, yerr=errors, marker="o", linestyle=style, label=label)
        for p in PERCENTILES:
            loads, mids, errors = _series(by_load, lambda r, p=p: r["accept_to_confirmed_ms"][p])
            latency.errorbar(
                loads, mids, yerr=errors, marker="o", linestyle=style, label=f"{label} {p}"
            )
    if mode == "rate":
        top = max(load for m, label in runs if m == mode for load in runs[m, label])
        throughput.plot([0, top], [0, top], color="grey", linewidth=0.8, label="offered")
    throughput.set(xlabel=xlabel, ylabel="achieved orders/s", title="throughput")
    latency.set(
        xlabel=xlabel,
        ylabel="accept → confirmed (ms, log)",
        title="latency percentiles",
        yscale="log",
    )
    for axes in (throughput, latency):
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize="small")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("inputs", nargs="+", type=Path, help="files of JSON lines")
    parser.add_argument("--out-dir", type=Path, default=Path("docs/images"))
    parser.add_argument("--title", default="loadtest/bench.py, medians of the runs (bars: range)")
    args = parser.parse_args(argv)
    runs: Runs = defaultdict(lambda: defaultdict(list))
    for path in args.inputs:
        for key, by_load in read_runs(path.read_text().splitlines()).items():
            for load, results in by_load.items():
                runs[key][load].extend(results)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for mode in ("concurrency", "rate"):
        out = args.out_dir / f"bench-{mode}.png"
        if plot_mode(runs, mode, args.title, out):
            print(out)


if __name__ == "__main__":
    main()
