"""Scheduler benchmark: fire lateness at N schedules, idle CPU and resident memory,
beside APScheduler 3 firing the same schedules in the same run.

Schedule ``i`` fires every ``base + i * step`` milliseconds, counted from the Unix epoch
(that is how a jobdeck `rate` is defined, and how the APScheduler peer's IntervalTrigger
is started), so the fires of all schedules spread evenly over time. Each fire runs a
trivial program in a warm pool. Lateness is "decided minus nominal": for jobdeck the
instant its scheduler's timer took the slot (the instant the slot is claimed with in the
store), for APScheduler the instant it submitted the job. Beside each, the machine's
floor in the same seconds: how late a bare sleeper wakes (``wake_floor.py``). The
server's CPU includes its timer's, a process of its own, and its memory is the server's
RSS plus what the timer adds: its private memory (the interpreter's files, which both
map, are counted once).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from harness import (
    JobdeckServer,
    children,
    cmdline,
    cpu_seconds,
    median,
    percentile,
    private_mb,
    rss_mb,
    wait_for,
)

from jobdeck.store import open_store

PEER = Path(__file__).parent / "peers" / "apscheduler_peer.py"
FLOOR = Path(__file__).parent / "wake_floor.py"


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
    floor = _floor(window)
    peer_lateness = _apscheduler(periods, window)
    peer_floor = _lateness_of(floor)
    with JobdeckServer(catalog(periods)) as server:
        began = time.time()
        timer = wait_for(lambda: _timer(server.pid), 30, "the scheduler's timer")
        floor = _floor(window)
        time.sleep(window)
        jobdeck_floor = _lateness_of(floor)
        rss, timer_mb = rss_mb(server.pid), private_mb(timer)
        lateness, started = _lateness(server, began)
        # Idle: the same schedules, each now firing once a week; nothing is due.
        idle = catalog([604_800_000 + p for p in periods])
        (server.dir / "jobdeck.yaml").write_text(idle)
        server.jobdeck("apply", "--yes")
        wait_for(lambda: _revision(server) >= 2, 60, "the idle revision")
        time.sleep(5)
        pids = (server.pid, timer)
        before, t0 = sum(map(cpu_seconds, pids)), time.monotonic()
        time.sleep(15)
        idle_cpu = (sum(map(cpu_seconds, pids)) - before) / (time.monotonic() - t0) * 100
        rss, timer_mb = max(rss, rss_mb(server.pid)), max(timer_mb, private_mb(timer))
    return {
        "schedules": float(count),
        "fires": float(len(lateness)),
        "lateness_p50_ms": median(lateness),
        "lateness_p99_ms": percentile(lateness, 0.99),
        "lateness_max_ms": max(lateness, default=0.0),
        "nominal_to_started_p50_ms": median(started),
        "nominal_to_started_p99_ms": percentile(started, 0.99),
        "floor_lateness_p99_ms": percentile(jobdeck_floor, 0.99),
        "apscheduler_fires": float(len(peer_lateness)),
        "apscheduler_lateness_p99_ms": percentile(peer_lateness, 0.99),
        "apscheduler_floor_lateness_p99_ms": percentile(peer_floor, 0.99),
        "idle_cpu_percent": idle_cpu,
        "rss_mb": rss + timer_mb,
        "server_rss_mb": rss,
        "timer_private_mb": timer_mb,
    }


def _timer(server: int) -> int | None:
    """The server's timer process (its CPU and memory count as the server's)."""
    for pid in children(server):
        if "jobdeck.schedule.timer" in cmdline(pid):
            return pid
    return None


def _lateness(server: JobdeckServer, since: float) -> tuple[list[float], list[float]]:
    """Each fire's lateness (decided minus nominal) and, beside it, what a user of the
    schedule sees: its program started minus nominal (launch included)."""
    with open_store(state_dir=server.state_dir) as store:
        runs = store.runs.runs(trigger="schedule", limit=1_000_000)
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


def _floor(window: float) -> subprocess.Popen[str]:
    """The machine's floor for a timer, measured over the next ``window`` seconds."""
    return subprocess.Popen(
        [sys.executable, str(FLOOR), str(window)], stdout=subprocess.PIPE, text=True
    )


def _lateness_of(probe: subprocess.Popen[str]) -> list[float]:
    out, _ = probe.communicate(timeout=120)
    if probe.returncode != 0:
        raise RuntimeError(f"the wake floor probe exited with status {probe.returncode}")
    values: list[float] = json.loads(out)["lateness_ms"]
    return values


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
