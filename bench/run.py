"""jobdeck's benchmarks, side by side with the peers, in one run.

    python bench/run.py [--quick] [--json] [--only dispatch,scheduler,sqs,runs]

Each benchmark starts what it needs itself (a jobdeck server in a temporary state dir,
the peer), warms up, measures, and cleans up. `--quick` is the short version (under 3
minutes); the full run takes under 20. `--json` prints one JSON object:

    {"dispatch":  {"p50_ms", "p99_ms", "spawn_p99_ms"},
     "scheduler": {"schedules", "lateness_p50_ms", "lateness_p99_ms", "lateness_max_ms",
                   "apscheduler_lateness_p99_ms", "idle_cpu_percent", "rss_mb"},
     "sqs":       {"jobdeck_msgs_per_s", "moto_msgs_per_s", "jobdeck_p99_ms"},
     "runs":      {"runs_per_s", "spawn_per_s"}}

The table shows these and a few more figures that explain them. docs/benchmarks.md
records the machine, the commands and the latest results.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import dispatch_bench
import runs_bench
import scheduler_bench
import sqs_bench

KEYS: dict[str, tuple[str, ...]] = {
    "dispatch": ("p50_ms", "p99_ms", "spawn_p99_ms"),
    "scheduler": (
        "schedules",
        "lateness_p50_ms",
        "lateness_p99_ms",
        "lateness_max_ms",
        "apscheduler_lateness_p99_ms",
        "idle_cpu_percent",
        "rss_mb",
    ),
    "sqs": ("jobdeck_msgs_per_s", "moto_msgs_per_s", "jobdeck_p99_ms"),
    "runs": ("runs_per_s", "spawn_per_s"),
}
BENCHES: dict[str, Callable[[bool], dict[str, float]]] = {
    "dispatch": dispatch_bench.run,
    "scheduler": scheduler_bench.run,
    "sqs": sqs_bench.run,
    "runs": runs_bench.run,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the short version")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--only", default=",".join(BENCHES), help="which benchmarks")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    results: dict[str, dict[str, float]] = {}
    extras: dict[str, dict[str, float]] = {}
    for name in chosen:
        began = time.monotonic()
        print(f"== {name} ...", file=sys.stderr, flush=True)
        figures = BENCHES[name](args.quick)
        # Each benchmark's figures as it ends: a later one that fails loses none of them.
        print(
            f"== {name}: {time.monotonic() - began:.0f} s {json.dumps(figures)}",
            file=sys.stderr,
            flush=True,
        )
        results[name] = {key: float(figures[key]) for key in KEYS[name]}
        extras[name] = {k: v for k, v in figures.items() if k not in KEYS[name]}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for name, figures in results.items():
        print(f"\n{name}")
        for key, value in {**figures, **extras[name]}.items():
            print(f"  {key:<30} {value:>12.2f}")


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    # As SystemExit, so that every server, peer and run the benchmark started is stopped
    # and removed on the way out, as after Ctrl-C.
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    main()
