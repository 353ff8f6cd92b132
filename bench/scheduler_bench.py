"""Scheduler benchmark: fire lateness at N schedules, idle CPU and resident memory,
beside APScheduler 3 firing the same schedules in the same run.

Schedule ``i`` fires every ``base + i * step`` milliseconds, counted from the Unix epoch
(that is how a jobdeck `rate` is defined, and how the APScheduler peer's IntervalTrigger
is started), so the fires of all schedules spread evenly over time. Each fire runs a
trivial program in a warm pool. Lateness is "decided minus nominal": for jobdeck the
instant its scheduler claimed the slot, for APScheduler the instant it submitted the job.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from harness import JobdeckServer, cpu_seconds, median, percentile, rss_mb, wait_for

from jobdeck.store import open_store

PEER = Path(__file__).parent / "peers" / "apscheduler_peer.py"


def periods_ms(count: int, base_ms: int, step_ms: int) -> list[int]:
    return [base_ms + i * step_ms for i in range(count)]


def catalog(periods: list[int]) -> str:
    lines = [
        "version: 1",
        "project: bench",
        "pools:",
        "  tick: {memory: 1GiB, priority: high, warm: true, max_concurrency: 64}",
        "schedules:",
    ]
    for i, period in enumerate(periods):
        lines += [
            f"  s{i}:",
            f"    rate: {period}ms",
            '    command: ["/bin/true"]',
            "    pool: tick",
            "    overlap: allow",
            "    timeout: 1m",
            "    catchup: none",
        ]
    return "\n".join(lines) + "\n"


def run(quick: bool) -> dict[str, float]:
    count = 1_000 if quick else 10_000
    window = 30.0 if quick else 90.0
    base, step = (20_000, 13) if quick else (120_000, 11)
    periods = periods_ms(count, base, step)
    peer_lateness = _apscheduler(periods, window)
    with JobdeckServer(catalog(periods)) as server:
        began = time.time()
        time.sleep(window)
        rss = rss_mb(server.pid)
        lateness, started = _lateness(server, began)
        # Idle: the same schedules, each now firing once a week; nothing is due.
        idle = catalog([604_800_000 + p for p in periods])
        (server.dir / "jobdeck.yaml").write_text(idle)
        server.jobdeck("apply", "--yes")
        wait_for(lambda: _revision(server) >= 2, 60, "the idle revision")
        time.sleep(5)
        before, t0 = cpu_seconds(server.pid), time.monotonic()
        time.sleep(15)
        idle_cpu = (cpu_seconds(server.pid) - before) / (time.monotonic() - t0) * 100
        rss = max(rss, rss_mb(server.pid))
    return {
        "schedules": float(count),
        "fires": float(len(lateness)),
        "lateness_p50_ms": median(lateness),
        "lateness_p99_ms": percentile(lateness, 0.99),
        "lateness_max_ms": max(lateness, default=0.0),
        "nominal_to_started_p50_ms": median(started),
        "nominal_to_started_p99_ms": percentile(started, 0.99),
        "apscheduler_fires": float(len(peer_lateness)),
        "apscheduler_lateness_p99_ms": percentile(peer_lateness, 0.99),
        "idle_cpu_percent": idle_cpu,
        "rss_mb": rss,
    }


def _lateness(server: JobdeckServer, since: float) -> tuple[list[float], list[float]]:
    """Each fire's lateness (decided minus nominal) and, beside it, what a user of the
    schedule sees: its program started minus nominal (launch included)."""
    with open_store(state_dir=server.state_dir) as store:
        runs = store.runs(trigger="schedule", limit=1_000_000)
    timed = [r for r in runs if "lateness_ms" in r.detail and r.created_at.timestamp() >= since]
    started = []
    for run in timed:
        process = run.detail.get("process_started_at")
        if process is not None and run.scheduled_for is not None:
            delta = datetime.fromisoformat(process) - run.scheduled_for
            started.append(delta.total_seconds() * 1000)
    return [float(run.detail["lateness_ms"]) for run in timed], started


def _revision(server: JobdeckServer) -> int:
    body: dict[str, Any] = server.client.get("/api/v1/revisions").json()
    items = body.get("items", body if isinstance(body, list) else [])
    return max((int(r["number"]) for r in items), default=0)


def _apscheduler(periods: list[int], window: float) -> list[float]:
    done = subprocess.run(
        [sys.executable, str(PEER), json.dumps({"periods_ms": periods, "window": window})],
        capture_output=True,
        text=True,
        check=True,
        timeout=window + 300,
    )
    values: list[float] = json.loads(done.stdout)["lateness_ms"]
    return values


if __name__ == "__main__":
    print(json.dumps(run("--quick" in sys.argv), indent=2))
